//! MySQL servers that number rows otherwise than one by one, as a Galera
//! node does (`auto_increment_increment` = the cluster's size, its own
//! offset, `innodb_autoinc_lock_mode=2`): batches racing single creates
//! still get exactly the rows they wrote, in order.
//!
//! A batch is one multi-row INSERT read back by the ids MySQL reports
//! (`db::inserted_ids`); with ids taken one apart, it would read rows of
//! other callers, or miss its own.

use std::collections::HashMap;

use futures_util::future::join_all;
use users_client::User;
use users_tests::PrivateMysql;

use crate::server::ServerProcess;

const STEP: i64 = 3;
const OFFSET: i64 = 2;
const BATCHES: usize = 40;
const BATCH: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_batches_get_their_own_rows_when_ids_step_by_three_and_interleave() {
    let mysql = tokio::task::block_in_place(|| {
        PrivateMysql::start_with(&[
            "--auto-increment-increment=3",
            "--auto-increment-offset=2",
            "--innodb-autoinc-lock-mode=2",
        ])
    });
    mysql.create_database("users");
    let server = ServerProcess::start(&mysql.url("users"), &["--pool-size", "8"]);
    let client = server.client().await;

    // Batches from 4 callers at once, while 4 others create one by one.
    let batches = join_all((0..4).map(|caller| {
        let client = client.clone();
        async move {
            let mut returned = Vec::new();
            for batch in (caller..BATCHES).step_by(4) {
                let names: Vec<String> = (0..BATCH).map(|i| format!("b{batch}-{i}")).collect();
                let users = client.batch_create_users(names.clone()).await.unwrap();
                let got: Vec<&str> = users.iter().map(|user| user.name.as_str()).collect();
                assert_eq!(got, names, "batch {batch} got its own rows, in order");
                returned.extend(users);
            }
            returned
        }
    }));
    let singles = join_all((0..4).map(|caller| {
        let client = client.clone();
        async move {
            let mut returned = Vec::new();
            for i in 0..100 {
                let name = format!("s{caller}-{i}");
                let user = client.create_user(name.as_str()).await.unwrap();
                assert_eq!(user.name, name);
                returned.push(user);
            }
            returned
        }
    }));
    let (batches, singles) = tokio::join!(batches, singles);
    let returned: Vec<User> = batches.into_iter().chain(singles).flatten().collect();

    // Each id went to one caller, each row is as stored, every id is this
    // node's (offset 2, step 3).
    let mut by_id: HashMap<i64, &User> = HashMap::new();
    for user in &returned {
        assert!(
            by_id.insert(user.id, user).is_none(),
            "id {} twice",
            user.id
        );
        assert_eq!(user.id % STEP, OFFSET, "{user:?}");
    }
    let stored = crate::crash::stored_users(&client).await;
    assert_eq!(stored.values().map(Vec::len).sum::<usize>(), returned.len());
    for user in &returned {
        assert_eq!(stored[&user.name], [user.id], "{user:?}");
    }
    println!(
        "ids stepping by {STEP}, lock mode 2: {} batches of {BATCH} and 400 single creates at once, \
         every caller got exactly its rows",
        BATCHES
    );
}
