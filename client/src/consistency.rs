//! [`ConsistencyToken`]: what lets a client read its own writes from a
//! server that serves reads from read replicas.
//!
//! Such a server answers each write with `x-consistency-token`, a position
//! in the database's log past the write's commit; a read that sends it back
//! is served only by a replica that has replayed that far, or by the
//! primary. The client keeps the furthest token its writes returned and
//! sends it with every call, so a read made after a write sees it. Servers
//! without read replicas send no tokens, and calls carry none.

use std::sync::{Mutex, PoisonError};

use tonic::metadata::{AsciiMetadataValue, MetadataMap};

/// The metadata key, in requests and in responses.
pub const KEY: &str = "x-consistency-token";

/// The furthest token seen, shared by a client's clones.
#[derive(Debug, Default)]
pub(crate) struct ConsistencyToken(Mutex<Option<Seen>>);

#[derive(Debug, Clone)]
struct Seen {
    /// The WAL position, to tell the furthest of two tokens; `None` for a
    /// token of another form, which replaces whatever came before it.
    position: Option<u64>,
    value: AsciiMetadataValue,
}

impl ConsistencyToken {
    /// Adds the token, if there is one, to a call's `metadata`.
    pub(crate) fn attach(&self, metadata: &mut MetadataMap) {
        if let Some(seen) = &*self.lock() {
            metadata.insert(KEY, seen.value.clone());
        }
    }

    /// Keeps the token of a response's `metadata` if it is further than
    /// the one kept (responses to concurrent writes arrive in any order).
    pub(crate) fn observe(&self, metadata: &MetadataMap) {
        let Some(value) = metadata.get(KEY) else {
            return;
        };
        let position = value.to_str().ok().and_then(parse_position);
        let mut kept = self.lock();
        let further = match (kept.as_ref().and_then(|kept| kept.position), position) {
            (Some(kept), Some(new)) => new > kept,
            _ => true,
        };
        if further {
            *kept = Some(Seen {
                position,
                value: value.clone(),
            });
        }
    }

    /// The token kept, as text.
    pub(crate) fn get(&self) -> Option<String> {
        self.lock()
            .as_ref()
            .and_then(|seen| seen.value.to_str().ok().map(str::to_owned))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Seen>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The position a token names: a PostgreSQL WAL position, `16/B374D848`
/// (two hexadecimal numbers of up to 8 digits), as one number, for
/// ordering tokens. `None` for any other text. The server reads tokens
/// with it too.
pub fn parse_position(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    let half = |part: &str| {
        (!part.is_empty() && part.len() <= 8 && part.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(part, 16).ok())
            .flatten()
    };
    Some((u64::from(half(high)?) << 32) | u64::from(half(low)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(token: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert(KEY, token.parse().unwrap());
        metadata
    }

    fn sent(token: &ConsistencyToken) -> Option<String> {
        let mut metadata = MetadataMap::new();
        token.attach(&mut metadata);
        metadata
            .get(KEY)
            .map(|value| value.to_str().unwrap().to_owned())
    }

    #[test]
    fn calls_carry_the_furthest_token_seen() {
        let token = ConsistencyToken::default();
        assert_eq!(sent(&token), None, "no token before a write");
        token.observe(&MetadataMap::new());
        assert_eq!(sent(&token), None, "a response without one changes nothing");

        token.observe(&response("0/16B3748"));
        assert_eq!(sent(&token).as_deref(), Some("0/16B3748"));
        token.observe(&response("1/0"));
        token.observe(&response("0/FFFFFFFF"));
        assert_eq!(
            sent(&token).as_deref(),
            Some("1/0"),
            "an earlier write answered last"
        );
        token.observe(&response("1/A"));
        assert_eq!(token.get().as_deref(), Some("1/A"));
    }

    #[test]
    fn positions_compare_as_numbers() {
        assert_eq!(parse_position("16/B374D848"), Some(0x16_B374_D848));
        assert!(parse_position("0/10") > parse_position("0/F"));
        for junk in ["", "1", "/1", "1/", "x/1", "1/2/3", "100000000/0"] {
            assert_eq!(parse_position(junk), None, "{junk}");
        }
    }
}
