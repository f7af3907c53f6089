//! Telling the requests `jit` made for this user from everybody else's.
//!
//! A JIT policy's request history mixes requests from colleagues, the portal, scripts and
//! pipelines. A new request on a port revokes every older one on that port, whoever made
//! it, so re-requesting "whatever is open" would replace a colleague's access with ours,
//! or renew a `*` rule nobody asked us to renew. `jit` therefore only ever extends or
//! adopts requests it can show are its own:
//!
//! - every request `jit` sends carries a **marker** in its justification,
//!   `[jit:TAG:NONCE]`: `TAG` names this user on this machine (a random value created once
//!   in the state directory, see [`ClientTag`]), `NONCE` names the one request. After an
//!   ambiguous failure (a 5xx or a dropped connection on `initiate`), the request is
//!   recognised in the policy by its nonce, not by timing;
//! - Azure records who asked in `requestor` (the caller's UPN; empty for some service
//!   principals), which nobody can forge. A request carrying our tag but recorded for
//!   another requestor than our own earlier requests is not ours.
//!
//! What it gives up: a request made by the same person from another machine, with an
//! older `jit`, or in the portal is not recognised as ours, so `jit extend` refuses to
//! renew it (`jit connect` asks for a window of one's own instead). The marker is visible
//! in the portal's request history; `jit` hides it when it prints a justification.

use std::fmt;
use std::io::{self, Write as _};
use std::path::Path;

use crate::azure::models::JitNetworkAccessRequest;

/// The file in the state directory that holds the tag.
const TAG_FILE: &str = "client-tag";

/// Identifies this user's `jit` on this machine in the requests it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTag(String);

impl ClientTag {
    /// A tag from its text: 6 to 16 lowercase hexadecimal digits.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let valid = (6..=16).contains(&text.len())
            && text
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
        valid.then(|| Self(text.to_owned()))
    }

    /// A new random tag.
    pub fn generate() -> Self {
        Self(random_hex(8))
    }

    /// The tag kept in `state_dir`, created (atomically, once) when there is none yet.
    pub fn load_or_create(state_dir: &Path) -> io::Result<Self> {
        let path = state_dir.join(TAG_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                return Self::parse(&text).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} does not hold a tag", path.display()),
                    )
                });
            }
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            Err(_) => {}
        }
        std::fs::create_dir_all(state_dir)?;
        let tag = Self::generate();
        let mut temporary = tempfile_in(state_dir)?;
        temporary.1.write_all(tag.0.as_bytes())?;
        temporary.1.sync_all()?;
        drop(temporary.1);
        // Two processes may race to create it: the first rename wins for both, since the
        // loser reads the winner's file back.
        match std::fs::hard_link(&temporary.0, &path) {
            Ok(()) => {
                let _ = std::fs::remove_file(&temporary.0);
                Ok(tag)
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&temporary.0);
                let text = std::fs::read_to_string(&path)?;
                Self::parse(&text).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "the tag file is damaged")
                })
            }
            Err(_) => {
                // File systems without hard links: a rename is still atomic.
                std::fs::rename(&temporary.0, &path)?;
                Ok(tag)
            }
        }
    }

    /// The tag's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientTag {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A fresh file next to where the tag goes (created exclusively, so never a link).
fn tempfile_in(directory: &Path) -> io::Result<(std::path::PathBuf, std::fs::File)> {
    for _ in 0..8 {
        let path = directory.join(format!(".{TAG_FILE}.{}", random_hex(6)));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => return Ok((path, file)),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "could not create a temporary file",
    ))
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// The marker one request carries: who made it (tag) and which request it is (nonce).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMarker {
    /// This user's tag, if the state directory could hold one.
    pub tag: Option<ClientTag>,
    /// Unique to the request.
    pub nonce: String,
}

impl RequestMarker {
    /// A marker for a new request.
    pub fn new(tag: Option<&ClientTag>) -> Self {
        Self {
            tag: tag.cloned(),
            nonce: random_hex(6),
        }
    }

    /// The justification to send: the person's text, then the marker.
    pub fn stamp(&self, justification: Option<&str>) -> String {
        let text = justification.map(str::trim).unwrap_or_default();
        let marker = format!(
            "[jit:{}:{}]",
            self.tag.as_ref().map_or("-", ClientTag::as_str),
            self.nonce
        );
        if text.is_empty() {
            marker
        } else {
            format!("{text} {marker}")
        }
    }

    /// The marker in a justification, if it carries one.
    pub fn find(justification: &str) -> Option<Self> {
        let start = justification.rfind("[jit:")?;
        let inner = justification[start + 5..].strip_suffix(']')?;
        let (tag, nonce) = inner.split_once(':')?;
        let nonce_ok =
            (4..=16).contains(&nonce.len()) && nonce.chars().all(|c| c.is_ascii_hexdigit());
        if !nonce_ok {
            return None;
        }
        Some(Self {
            tag: ClientTag::parse(tag),
            nonce: nonce.to_owned(),
        })
    }
}

/// The justification as the person wrote it, without `jit`'s marker.
pub fn readable_justification(justification: &str) -> &str {
    match (
        justification.rfind("[jit:"),
        RequestMarker::find(justification),
    ) {
        (Some(start), Some(_)) => justification[..start].trim_end(),
        _ => justification,
    }
}

/// Whether `request` is the one that carried `marker` (after an ambiguous failure).
pub fn is_request(request: &JitNetworkAccessRequest, marker: &RequestMarker) -> bool {
    request
        .justification
        .as_deref()
        .and_then(RequestMarker::find)
        .is_some_and(|found| found.nonce == marker.nonce && found.tag == marker.tag)
}

/// Who we are, as far as telling our requests apart goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    /// This user's tag on this machine.
    pub tag: Option<ClientTag>,
    /// The `requestor` Azure recorded on a request known to be ours, when one is known.
    pub requestor: Option<String>,
}

impl Ownership {
    /// Whether `request` was made by this user's `jit` on this machine.
    pub fn owns(&self, request: &JitNetworkAccessRequest) -> bool {
        let Some(tag) = &self.tag else {
            return false;
        };
        let tagged = request
            .justification
            .as_deref()
            .and_then(RequestMarker::find)
            .and_then(|marker| marker.tag)
            .is_some_and(|found| &found == tag);
        if !tagged {
            return false;
        }
        // The tag is only text: a request Azure records for someone else is theirs, even
        // if it copies our marker.
        match (&self.requestor, request.requestor.as_deref()) {
            (Some(ours), Some(theirs)) if !theirs.is_empty() => ours.eq_ignore_ascii_case(theirs),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(justification: Option<&str>, requestor: Option<&str>) -> JitNetworkAccessRequest {
        serde_json::from_value(serde_json::json!({
            "virtualMachines": [],
            "startTimeUtc": "2026-01-01T10:00:00Z",
            "requestor": requestor,
            "justification": justification,
        }))
        .expect("request")
    }

    #[test]
    fn markers_round_trip_and_hide_from_people() {
        let tag = ClientTag::parse("0a1b2c3d4e5f6a7b").expect("tag");
        let marker = RequestMarker::new(Some(&tag));
        let stamped = marker.stamp(Some("  deploy hotfix "));
        assert!(
            stamped.starts_with("deploy hotfix [jit:0a1b2c3d4e5f6a7b:"),
            "{stamped}"
        );
        assert_eq!(RequestMarker::find(&stamped), Some(marker));
        assert_eq!(readable_justification(&stamped), "deploy hotfix");
        assert_eq!(readable_justification("plain text"), "plain text");
        let bare = RequestMarker::new(None).stamp(None);
        assert!(bare.starts_with("[jit:-:"), "{bare}");
        assert_eq!(RequestMarker::find(&bare).and_then(|found| found.tag), None);
        assert_eq!(readable_justification(&bare), "");
    }

    #[test]
    fn only_tagged_requests_of_our_requestor_are_ours() {
        let tag = ClientTag::parse("abcdef12").expect("tag");
        let other = ClientTag::parse("12abcdef").expect("tag");
        let ours = RequestMarker::new(Some(&tag)).stamp(Some("x"));
        let theirs = RequestMarker::new(Some(&other)).stamp(Some("x"));
        let ownership = Ownership {
            tag: Some(tag),
            requestor: Some("me@contoso.com".to_owned()),
        };
        assert!(ownership.owns(&request(Some(&ours), Some("ME@contoso.com"))));
        assert!(ownership.owns(&request(Some(&ours), None)));
        assert!(!ownership.owns(&request(Some(&theirs), Some("me@contoso.com"))));
        assert!(!ownership.owns(&request(Some("by hand"), Some("me@contoso.com"))));
        assert!(!ownership.owns(&request(Some(&ours), Some("mallory@contoso.com"))));
        assert!(!Ownership::default().owns(&request(Some(&ours), None)));
    }

    #[test]
    fn a_request_is_recognised_by_its_nonce() {
        let tag = ClientTag::generate();
        let marker = RequestMarker::new(Some(&tag));
        let sibling = RequestMarker::new(Some(&tag));
        assert!(is_request(
            &request(Some(&marker.stamp(None)), None),
            &marker
        ));
        assert!(!is_request(
            &request(Some(&sibling.stamp(None)), None),
            &marker
        ));
        assert!(!is_request(&request(None, None), &marker));
    }

    #[test]
    fn the_tag_is_created_once_and_kept() {
        let temp = tempfile::tempdir().expect("temp dir");
        let first = ClientTag::load_or_create(temp.path()).expect("created");
        let second = ClientTag::load_or_create(temp.path()).expect("read back");
        assert_eq!(first, second);
        std::fs::write(temp.path().join(TAG_FILE), "not hex!").expect("write");
        assert!(ClientTag::load_or_create(temp.path()).is_err());
    }
}
