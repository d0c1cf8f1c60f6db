//! FindUsers and ExportUsers: users matching filters, in order, a page at a
//! time or streamed whole.

use std::{pin::Pin, time::Instant};

use futures_util::{Stream, StreamExt, stream};
use tonic::Status;
use tracing::Instrument;
use users_client::pb;

use super::UsersService;
use crate::db::{Database, replicas, retry};
use crate::domain::{After, NamePrefix, OrderBy, PageSize, PageToken, UserFilter, UserName};
use crate::error::ApiError;
use crate::models::User;

/// The response header of ExportUsers that tells where to start watching
/// (WatchUsers `after_sequence`) to miss no change the export may lack.
pub const WATCH_FROM: &str = "x-users-event-sequence";

/// The users an ExportUsers call streams.
pub type UserStream = Pin<Box<dyn Stream<Item = Result<pb::User, Status>> + Send>>;

/// Users read per query while exporting: big enough that the queries cost
/// little per user, small enough that a chunk is a few hundred KiB at most.
const EXPORT_CHUNK: i64 = 1000;

/// A `FindUsersRequest` (or an `ExportUsersRequest`, its twin), validated.
struct Listing {
    filter: UserFilter,
    order: OrderBy,
    after: Option<After>,
    page_size: PageSize,
}

impl Listing {
    fn parse(request: pb::FindUsersRequest) -> Result<Self, ApiError> {
        let filter = UserFilter {
            name: match request.name {
                name if name.is_empty() => None,
                name => Some(UserName::parse("name", name)?),
            },
            name_prefix: NamePrefix::parse("name_prefix", request.name_prefix)?,
        };
        let order = OrderBy::parse("order_by", &request.order_by)?;
        let page_size = PageSize::parse(request.page_size)?;
        let after =
            PageToken::parse(&request.page_token, &filter, order)?.map(PageToken::into_after);
        Ok(Self {
            filter,
            order,
            after,
            page_size,
        })
    }

    /// Up to `limit` users from where the listing stands.
    async fn read(&self, db: &Database, limit: i64) -> Result<Vec<User>, ApiError> {
        let names = self.filter.name_match();
        Ok(db
            .read_statement(async |mut tx| {
                User::find(&mut tx, &names, self.order, self.after.as_ref(), limit).await
            })
            .await?)
    }
}

impl UsersService {
    pub(super) async fn find_users_inner(
        &self,
        request: pb::FindUsersRequest,
    ) -> Result<pb::FindUsersResponse, ApiError> {
        let listing = Listing::parse(request)?;
        let page_size = listing.page_size.get();
        // One row more than the page tells whether another page follows.
        let limit = i64::try_from(page_size + 1).unwrap_or(i64::MAX);
        let mut users = listing.read(&self.db, limit).await?;

        let next_page_token = if users.len() > page_size {
            users.truncate(page_size);
            users
                .last()
                .map(|last| {
                    PageToken::new(last.position(listing.order.field))
                        .encode(&listing.filter, listing.order)
                })
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(pb::FindUsersResponse {
            users: users.into_iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    /// Validates the request and returns the stream; each chunk is read when
    /// the stream is polled for it, which tonic does only as fast as HTTP/2
    /// flow control lets it send. So a slow reader holds at most a chunk in
    /// the server, however large the export.
    ///
    /// The stream is polled after the handler has returned, outside the
    /// call's span: each chunk's read enters it again, so that its log
    /// lines carry the call's request id, and each reads after the call's
    /// consistency token.
    ///
    /// The caller's `deadline`, if it gave one, bounds the whole export:
    /// past it, the stream ends with DEADLINE_EXCEEDED instead of reading
    /// on. Without one an export may take as long as its reader does (a
    /// `--default-timeout` of 30 s would end large exports), but each
    /// chunk's read is bounded by the default timeout. A reader that
    /// stalls polls nothing, so it holds no connection meanwhile; its
    /// client drops the call at its own deadline.
    ///
    /// Returns with the stream the sequence of the last change event
    /// committed before the export began: watching after it (WatchUsers)
    /// misses no change the export may lack.
    pub(super) async fn export_users_inner(
        &self,
        request: pb::ExportUsersRequest,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(UserStream, i64), ApiError> {
        let listing = Listing::parse(request.into())?;
        let watch_from = self.log_position(deadline).await?;
        let db = self.db.clone();
        let default_timeout = self.default_timeout;
        let started = Instant::now();
        let call = tracing::Span::current();
        let read_after = replicas::read_after();
        let chunks = stream::unfold(Some((listing, 0_u64)), move |state| {
            let db = db.clone();
            let call = call.clone();
            async move {
                let (mut listing, sent) = state?;
                let chunk_deadline = tokio::time::Instant::now() + default_timeout;
                let deadline = deadline.map_or(chunk_deadline, |call| call.min(chunk_deadline));
                let read = replicas::reading_after(
                    read_after,
                    retry::with_deadline(Some(deadline), listing.read(&db, EXPORT_CHUNK)),
                );
                let read = tokio::time::timeout_at(deadline, read)
                    .await
                    .unwrap_or(Err(ApiError::DeadlineExceeded));
                match read {
                    Err(error) => {
                        log_export(started, sent, Some(&error));
                        Some((vec![Err(Status::from(error))], None))
                    }
                    Ok(users) if users.is_empty() => {
                        log_export(started, sent, None);
                        None
                    }
                    Ok(users) => {
                        let sent = sent + users.len() as u64;
                        let last = users.last().map(|last| last.position(listing.order.field));
                        let more = users.len() as i64 == EXPORT_CHUNK;
                        let chunk = users.into_iter().map(|user| Ok(user.into())).collect();
                        if !more {
                            log_export(started, sent, None);
                            return Some((chunk, None));
                        }
                        listing.after = last;
                        Some((chunk, Some((listing, sent))))
                    }
                }
            }
            .instrument(call)
        });
        Ok((Box::pin(chunks.flat_map(stream::iter)), watch_from))
    }
}

/// One line when an export ends (the call's own line is logged when the
/// stream starts).
fn log_export(started: Instant, users: u64, error: Option<&ApiError>) {
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match error {
        None => tracing::info!(method = "ExportUsers", users, latency_ms, "export finished"),
        Some(error) => {
            tracing::warn!(method = "ExportUsers", users, latency_ms, %error, "export failed");
        }
    }
}
