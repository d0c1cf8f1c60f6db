//! Which user, which version of it, and which fields of it a request means.

use super::Invalid;

/// A user id from a request: positive (ids start at 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserId(i64);

impl UserId {
    /// Checks `id`; 0, the proto default, means it was left out.
    pub fn parse(field: &str, id: i64) -> Result<Self, Invalid> {
        match id {
            0 => Err(Invalid::new(field, "INVALID_USER_ID", "is required")),
            ..0 => Err(Invalid::new(
                field,
                "INVALID_USER_ID",
                format!("must be positive (got {id})"),
            )),
            id => Ok(Self(id)),
        }
    }

    /// The id as stored.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// A user's etag: the revision of its row, which every write increments.
/// Opaque to callers; shown as the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Etag(i64);

impl Etag {
    /// The etag of revision `revision`.
    pub fn of(revision: i64) -> Self {
        Self(revision)
    }

    /// Reads an etag from a request; empty means none (the write is
    /// unconditional).
    pub fn parse(field: &str, etag: &str) -> Result<Option<Self>, Invalid> {
        if etag.is_empty() {
            return Ok(None);
        }
        match etag.parse() {
            Ok(revision) if revision > 0 => Ok(Some(Self(revision))),
            _ => Err(Invalid::new(
                field,
                "INVALID_ETAG",
                "is not an etag this service issued; pass a user's etag unchanged",
            )),
        }
    }

    /// The row revision it stands for.
    pub fn revision(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for Etag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A `request_id`: a UUID, kept in its canonical form (lowercase,
/// hyphenated), so that every spelling of one UUID is one request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// Reads a `request_id`; empty means none.
    pub fn parse(field: &str, text: &str) -> Result<Option<Self>, Invalid> {
        if text.is_empty() {
            return Ok(None);
        }
        match uuid::Uuid::try_parse(text) {
            Ok(uuid) if !uuid.is_nil() => Ok(Some(Self(uuid.hyphenated().to_string()))),
            _ => Err(Invalid::new(
                field,
                "INVALID_REQUEST_ID",
                "must be a UUID other than the nil UUID, such as 8d7c7ed4-4e5b-4bb4-9a6c-1f0f0e1b8a3c",
            )),
        }
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The fields an `UpdateUser` changes. `name` is the only one that can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateMask {
    /// Set the name.
    pub name: bool,
}

impl UpdateMask {
    /// Reads `update_mask`: empty or `*` means every field that can change;
    /// a path naming an output-only or unknown field is invalid.
    pub fn parse<'a>(
        field: &str,
        paths: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, Invalid> {
        let mut mask = Self { name: false };
        let mut empty = true;
        for path in paths {
            empty = false;
            match path {
                "name" | "*" => mask.name = true,
                "id" | "create_time" | "update_time" | "etag" => {
                    return Err(Invalid::new(
                        field,
                        "INVALID_UPDATE_MASK",
                        format!("names {path:?}, which cannot be changed; only \"name\" can"),
                    ));
                }
                path => {
                    return Err(Invalid::new(
                        field,
                        "INVALID_UPDATE_MASK",
                        format!(
                            "names {path:?}, which is not a field of User; only \"name\" can be changed"
                        ),
                    ));
                }
            }
        }
        if empty {
            mask.name = true;
        }
        Ok(mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_and_required() {
        assert_eq!(UserId::parse("id", 7).unwrap().get(), 7);
        assert_eq!(
            UserId::parse("id", 0).unwrap_err().to_string(),
            "id is required"
        );
        assert_eq!(
            UserId::parse("user.id", -3).unwrap_err().to_string(),
            "user.id must be positive (got -3)"
        );
    }

    #[test]
    fn etags_round_trip_and_junk_is_refused() {
        let etag = Etag::of(12);
        assert_eq!(Etag::parse("etag", &etag.to_string()), Ok(Some(etag)));
        assert_eq!(Etag::parse("etag", ""), Ok(None));
        for junk in ["x", "-1", "0", "1.5", " 1", "99999999999999999999"] {
            assert_eq!(
                Etag::parse("etag", junk).unwrap_err().reason,
                "INVALID_ETAG",
                "{junk}"
            );
        }
    }

    #[test]
    fn request_ids_are_uuids_in_one_spelling() {
        let id = |text| RequestId::parse("request_id", text);
        let canonical = "8d7c7ed4-4e5b-4bb4-9a6c-1f0f0e1b8a3c";
        for spelling in [
            canonical,
            "8D7C7ED4-4E5B-4BB4-9A6C-1F0F0E1B8A3C",
            "8d7c7ed44e5b4bb49a6c1f0f0e1b8a3c",
            "{8d7c7ed4-4e5b-4bb4-9a6c-1f0f0e1b8a3c}",
        ] {
            assert_eq!(
                id(spelling).unwrap().unwrap().as_str(),
                canonical,
                "{spelling}"
            );
        }
        assert_eq!(id(""), Ok(None));
        for bad in [
            "x",
            "00000000-0000-0000-0000-000000000000",
            "8d7c7ed4-4e5b-4bb4-9a6c",
        ] {
            assert_eq!(id(bad).unwrap_err().reason, "INVALID_REQUEST_ID", "{bad}");
        }
    }

    #[test]
    fn masks_name_the_name_or_everything() {
        for paths in [vec![], vec!["name"], vec!["*"], vec!["name", "*"]] {
            assert_eq!(
                UpdateMask::parse("update_mask", paths.clone()),
                Ok(UpdateMask { name: true }),
                "{paths:?}"
            );
        }
        for paths in [
            vec!["id"],
            vec!["name", "create_time"],
            vec!["etag"],
            vec!["age"],
            vec![""],
        ] {
            let refused = UpdateMask::parse("update_mask", paths.clone()).unwrap_err();
            assert_eq!(refused.reason, "INVALID_UPDATE_MASK", "{paths:?}");
        }
    }
}
