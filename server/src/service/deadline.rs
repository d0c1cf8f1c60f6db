//! A call's deadline: the caller's `grpc-timeout`, or the server's
//! `--default-timeout`, counted from the call's arrival.

use std::time::Duration;

use tokio::time::Instant;
use tonic::{Request, Status, metadata::MetadataMap};

/// When a call arrived, stamped by [`stamp_arrival`] before it waited for
/// anything (a turn, its body).
#[derive(Debug, Clone, Copy)]
pub struct Arrival(Instant);

/// An interceptor, outermost on the users service: stamps the call's
/// [`Arrival`].
pub fn stamp_arrival(mut request: Request<()>) -> Result<Request<()>, Status> {
    request.extensions_mut().insert(Arrival(Instant::now()));
    Ok(request)
}

/// How much sooner than tonic we end a call that ran out of time: tonic's
/// own timer for `grpc-timeout` answers CANCELLED ("Timeout expired"), and
/// a call past its deadline is DEADLINE_EXCEEDED. Ours, set a tick sooner,
/// fires first.
const BEFORE_TONIC: Duration = Duration::from_millis(1);

/// When the call must end: its arrival plus the caller's `grpc-timeout`,
/// or plus `default` if it sent none. A malformed header counts as none
/// (tonic itself refuses such a call before it reaches a handler).
pub fn call_deadline<T>(request: &Request<T>, default: Duration) -> Instant {
    deadline_after(
        request,
        caller_timeout(request.metadata()).unwrap_or(default),
    )
}

/// When the caller wants the call to end, if it said (`grpc-timeout`).
pub fn caller_deadline<T>(request: &Request<T>) -> Option<Instant> {
    Some(deadline_after(request, caller_timeout(request.metadata())?))
}

fn deadline_after<T>(request: &Request<T>, timeout: Duration) -> Instant {
    let arrival = request
        .extensions()
        .get::<Arrival>()
        .map_or_else(Instant::now, |arrival| arrival.0);
    let timeout = timeout.saturating_sub(BEFORE_TONIC);
    arrival.checked_add(timeout).unwrap_or_else(far_future)
}

/// The caller's `grpc-timeout`, if it sent one.
fn caller_timeout(metadata: &MetadataMap) -> Option<Duration> {
    parse_timeout(metadata.get("grpc-timeout")?.to_str().ok()?)
}

/// An instant no call lives to see.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// `grpc-timeout`: at most 8 digits and a unit, `H`ours, `M`inutes,
/// `S`econds, `m`illis, `u`micros or `n`anos (the gRPC over HTTP/2 spec).
fn parse_timeout(text: &str) -> Option<Duration> {
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value * 3600),
        "M" => Duration::from_secs(value * 60),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_in_every_unit() {
        assert_eq!(parse_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_timeout("10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_timeout("99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(parse_timeout("5n"), Some(Duration::from_nanos(5)));
    }

    #[test]
    fn malformed_timeouts_are_none() {
        for text in ["", "S", "10", "10s", "123456789S", "-1S", "1.5S", "１S"] {
            assert_eq!(parse_timeout(text), None, "{text:?}");
        }
    }

    #[test]
    fn the_deadline_is_the_callers_timeout_or_the_default_from_arrival() {
        let default = Duration::from_secs(30);
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("grpc-timeout", "1500m".parse().unwrap());
        let left = call_deadline(&request, default) - Instant::now();
        assert!(left < Duration::from_millis(1500) && left > Duration::from_millis(1000));

        let arrived = stamp_arrival(Request::new(())).unwrap();
        let left = call_deadline(&arrived, default) - Instant::now();
        assert!(left < default && left > default - Duration::from_secs(1));
        let arrival = arrived.extensions().get::<Arrival>().unwrap().0;
        assert_eq!(
            call_deadline(&arrived, default),
            arrival + default - BEFORE_TONIC
        );
    }
}
