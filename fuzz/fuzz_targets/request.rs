//! Request bytes as a hostile caller sends them: the first byte picks the
//! RPC, the rest is its message. Bytes that decode go through the real
//! handler, on a SQLite database, and must never earn an INTERNAL (our bug),
//! UNKNOWN (a panic) or UNAVAILABLE status.

#![no_main]

use std::{sync::LazyLock, time::Duration};

use libfuzzer_sys::fuzz_target;
use prost::Message;
use tonic::{Code, Request, Status};
use users_client::pb::{self, user_service_server::UserService};
use users_server::{
    db::{Database, DatabaseUrl, PoolOptions, migrations},
    service::UsersService,
};

/// One service for the whole run, on a database in a directory that lives
/// as long as the process.
struct Handlers {
    runtime: tokio::runtime::Runtime,
    service: UsersService,
    _dir: tempfile::TempDir,
}

static HANDLERS: LazyLock<Handlers> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let url: DatabaseUrl = format!("sqlite://{}", dir.path().join("users.db").display())
        .parse()
        .unwrap();
    let service = runtime.block_on(async {
        migrations::prepare(&url, migrations::Mode::Apply)
            .await
            .unwrap();
        let options = PoolOptions {
            size: 2,
            timeout: Duration::from_secs(5),
            isolation: Default::default(),
        };
        UsersService::new(
            Database::open(url, options).unwrap(),
            Duration::from_secs(3600),
        )
    });
    Handlers {
        runtime,
        service,
        _dir: dir,
    }
});

fuzz_target!(|data: &[u8]| {
    let Some((&method, bytes)) = data.split_first() else {
        return;
    };
    let handlers = &*HANDLERS;
    let service = &handlers.service;
    let outcome: Option<Result<(), Status>> = handlers.runtime.block_on(async {
        Some(match method % 7 {
            0 => {
                let request = pb::CreateUserRequest::decode(bytes).ok()?;
                service.create_user(Request::new(request)).await.map(drop)
            }
            1 => {
                let request = pb::FindUsersRequest::decode(bytes).ok()?;
                service.find_users(Request::new(request)).await.map(drop)
            }
            2 => {
                let request = pb::GetUserRequest::decode(bytes).ok()?;
                service.get_user(Request::new(request)).await.map(drop)
            }
            3 => {
                let request = pb::UpdateUserRequest::decode(bytes).ok()?;
                service.update_user(Request::new(request)).await.map(drop)
            }
            4 => {
                let request = pb::DeleteUserRequest::decode(bytes).ok()?;
                service.delete_user(Request::new(request)).await.map(drop)
            }
            5 => {
                let request = pb::BatchCreateUsersRequest::decode(bytes).ok()?;
                service
                    .batch_create_users(Request::new(request))
                    .await
                    .map(drop)
            }
            _ => {
                let request = pb::FindUsersRequest::decode(bytes).ok()?;
                export(service, request).await
            }
        })
    });
    if let Some(Err(status)) = outcome {
        assert!(
            matches!(
                status.code(),
                Code::InvalidArgument | Code::NotFound | Code::Aborted | Code::FailedPrecondition
            ),
            "{status:?}"
        );
    }
});

/// Runs an export to its end or its first error.
async fn export(service: &UsersService, request: pb::FindUsersRequest) -> Result<(), Status> {
    use tonic::codegen::tokio_stream::StreamExt;
    let mut users = service
        .export_users(Request::new(request))
        .await?
        .into_inner();
    while let Some(user) = users.next().await {
        user?;
    }
    Ok(())
}
