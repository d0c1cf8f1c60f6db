//! ExportUsers streams 100,000 users to a slow reader without the server's
//! memory growing with the export: it reads a chunk only when HTTP/2 flow
//! control lets it send.
//!
//! Measured on anonymous memory (`RssAnon`), the server's own. Its file
//! pages grow too, as SQLite reads the database through a memory map, but
//! those are the kernel's page cache, reclaimable at any time, and bounded
//! by the file, not by the export.

mod support;

use futures_util::TryStreamExt;
use users_client::{FindUsers, UsersClient};

const USERS: usize = 100_000;
const BATCH: usize = 1_000;
/// Long names, so that the whole export (~25 MB on the wire, more in
/// memory) dwarfs what the server may hold at once.
const NAME_PADDING: usize = 200;

/// The growth allowed: a few chunks of 1,000 users in flight, the HTTP/2
/// windows, and what the allocator keeps of them. Measured with two CPU
/// hogs beside it: 0 to 6.6 MiB in 26 runs (median 2 MiB), and once 18.8
/// MiB; reading the whole table at once grows it by ~110 MiB. The bound
/// sits twice above the worst run seen and well below the failure.
const MAX_GROWTH_KIB: u64 = 40 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporting_100000_users_to_a_slow_reader_keeps_server_memory_flat() {
    let server = support::start(&[]);
    let client = UsersClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    let padding = "x".repeat(NAME_PADDING);
    for batch in 0..USERS / BATCH {
        let names = (0..BATCH).map(|i| format!("{:06}-{padding}", batch * BATCH + i));
        client.batch_create_users(names).await.unwrap();
    }
    let (before, file_before) = server.rss_kib();

    let mut users = client.export_users(FindUsers::new()).await.unwrap();
    let mut received = 0;
    let mut last_id = 0;
    let mut peak = before;
    while let Some(user) = users.try_next().await.unwrap() {
        assert!(user.id > last_id, "id order");
        last_id = user.id;
        received += 1;
        if received % 5_000 == 0 {
            peak = peak.max(server.rss_kib().0);
        }
        // Stall early on, until the server is idle: one that ignored flow
        // control would have read the whole table into its buffers by then.
        if received == 2_000 {
            server.wait_until_idle().await;
            peak = peak.max(server.rss_kib().0);
        }
    }
    assert_eq!(received, USERS);
    let growth = peak.saturating_sub(before);
    let (_, file_after) = server.rss_kib();
    eprintln!(
        "server anonymous memory: {before} KiB before the export, peak {peak} KiB during it \
         (+{growth} KiB); file pages (binary, mapped database) {file_before} -> {file_after} KiB"
    );
    assert!(
        growth < MAX_GROWTH_KIB,
        "server memory grew by {growth} KiB while exporting (before {before} KiB, peak {peak} KiB)"
    );
}
