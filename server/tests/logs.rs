//! The server's log as a log collector reads it: with `--log-format json`
//! every line is a JSON object, and every line of a call names its request
//! id.

mod support;

use std::{process::Command, sync::mpsc::RecvTimeoutError, time::Duration};

use serde_json::Value;
use support::{Running, start};
use tonic::Request;
use users_client::{UsersClient, pb};

/// `message` with `x-request-id: id`.
fn with_id<M>(message: M, id: &str) -> Request<M> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-request-id", id.parse().unwrap());
    request
}

/// Stops the server with SIGTERM, which flushes its log, and returns every
/// line it wrote since it started serving. Waits off the runtime, which
/// must go on driving the client's connection while the server closes it.
async fn stop_and_read_log(server: Running) -> Vec<String> {
    tokio::task::spawn_blocking(|| stop_and_read_log_blocking(server))
        .await
        .unwrap()
}

fn stop_and_read_log_blocking(mut server: Running) -> Vec<String> {
    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(server.child.wait().unwrap().code(), Some(0));
    let mut lines = Vec::new();
    loop {
        match server.log.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => lines.push(line),
            Err(RecvTimeoutError::Disconnected) => return lines,
            Err(RecvTimeoutError::Timeout) => panic!("stderr still open after exit"),
        }
    }
}

/// The lines of the call with request id `id`.
fn lines_of_call<'a>(log: &'a [Value], id: &str) -> Vec<&'a Value> {
    log.iter()
        .filter(|line| line["span"]["request_id"] == id)
        .collect()
}

fn messages(lines: &[&Value]) -> Vec<String> {
    lines
        .iter()
        .map(|line| line["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn with_log_format_json_every_line_is_json_and_carries_its_calls_request_id() {
    let server = start(&["--log-format", "json"]);
    let mut client = UsersClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap()
        .raw();

    let create = pb::CreateUserRequest {
        name: "Ada".into(),
        request_id: String::new(),
    };
    client
        .create_user(with_id(create.clone(), "json-create"))
        .await
        .unwrap();
    client
        .get_user(with_id(pb::GetUserRequest { id: 999 }, "json-missing"))
        .await
        .unwrap_err();
    // An export logs twice: the call, and the end of its stream.
    let mut export = client
        .export_users(with_id(pb::ExportUsersRequest::default(), "json-export"))
        .await
        .unwrap()
        .into_inner();
    while export.message().await.unwrap().is_some() {}
    // A replaced id: the warning and the call's line share the new one.
    let replaced = client
        .create_user(with_id(create, "not usable"))
        .await
        .unwrap();
    let generated = replaced
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();

    let log: Vec<Value> = stop_and_read_log(server)
        .await
        .iter()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"))
        })
        .collect();
    for line in &log {
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["level"].is_string(), "{line}");
        assert!(line["message"].is_string(), "{line}");
    }
    assert!(
        log.iter().any(|line| line["message"] == "stopped"),
        "the log ends with the shutdown: {log:#?}"
    );

    let created = lines_of_call(&log, "json-create");
    assert_eq!(messages(&created), ["rpc"], "{created:#?}");
    assert_eq!(created[0]["span"]["method"], "CreateUser");
    assert_eq!(created[0]["code"], "Ok");
    assert!(created[0]["latency_us"].is_u64(), "{}", created[0]);

    let missing = lines_of_call(&log, "json-missing");
    assert_eq!(messages(&missing), ["rpc"], "{missing:#?}");
    assert_eq!(missing[0]["span"]["method"], "GetUser");
    assert_eq!(missing[0]["code"], "NotFound");

    let exported = lines_of_call(&log, "json-export");
    let mut exported = messages(&exported);
    exported.sort();
    assert_eq!(exported, ["export finished", "rpc"]);

    let replaced = lines_of_call(&log, &generated);
    let replaced_messages = messages(&replaced);
    assert_eq!(replaced_messages.len(), 2, "{replaced:#?}");
    assert!(
        replaced_messages[0].starts_with("x-request-id replaced"),
        "{replaced:#?}"
    );
    assert_eq!(replaced[0]["level"], "WARN");
    assert_eq!(replaced_messages[1], "rpc");
}
