//! Where records, the admin index and claims live in etcd, and how values are encoded.
//!
//! Under a deployment prefix `P` (default `/imds/v1`):
//!
//! ```text
//! P/node/<node>/<collection>/<id>  -> a record placed on <node>   (what that node watches)
//! P/shared/<collection>/<id>       -> a record placed on no node  (scope "all", and of the
//!                                     shared collections every node: a node reads and
//!                                     watches P/shared/<collection>/ of those only)
//! P/index/<collection>/<id>        -> {"node", "claims", "write"}  (admin look-ups and listing)
//! P/claim/<claim>                  -> "<collection>/<id>" of the holder
//! P/lease/<collection>/<id>         -> the holder's name, attached to its etcd lease
//! ```
//!
//! Lease keys are no records: no snapshot reads them and the feeds drop them (scope "all"
//! watches the whole prefix but keeps only record keys).
//!
//! A record key's value is one JSON header line `{"claims":[…]}`, a newline, then the record's
//! bytes unchanged. Every write puts the record key and its index key in one transaction, so
//! both carry the same `mod_revision`: the record's revision and the admin ETag.

use imds_store::{Key, Record, Revision, Scope, StoreError};
use serde::{Deserialize, Serialize};

/// The key builder for one deployment prefix.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// The prefix, without a trailing `/`.
    prefix: String,
}

/// The admin index entry of a record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// The node the record is placed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) node: Option<String>,
    /// The claims the record holds, sorted.
    #[serde(default)]
    pub(crate) claims: Vec<String>,
    /// A random tag of the write that produced this version, so a write retried after a lost
    /// answer recognises its own earlier success.
    #[serde(default)]
    pub(crate) write: String,
}

/// The header line of a record value.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    #[serde(default)]
    claims: Vec<String>,
}

impl Layout {
    /// A layout under `prefix` (a trailing `/` is ignored).
    pub(crate) fn new(prefix: &str) -> Self {
        Self { prefix: prefix.trim_end_matches('/').to_owned() }
    }

    /// The deployment prefix.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of a record placed on `node`.
    pub(crate) fn record(&self, key: &Key, node: Option<&str>) -> String {
        match node {
            Some(node) => format!("{}/node/{node}/{}/{}", self.prefix, key.collection, key.id),
            None => format!("{}/shared/{}/{}", self.prefix, key.collection, key.id),
        }
    }

    /// The admin index key of a record.
    pub(crate) fn index(&self, key: &Key) -> String {
        format!("{}/index/{}/{}", self.prefix, key.collection, key.id)
    }

    /// The prefix of a collection's index keys.
    pub(crate) fn index_prefix(&self, collection: &str) -> String {
        format!("{}/index/{collection}/", self.prefix)
    }

    /// The key of a claim.
    pub(crate) fn claim(&self, claim: &str) -> String {
        format!("{}/claim/{claim}", self.prefix)
    }

    /// The key of a lease.
    pub(crate) fn lease(&self, key: &Key) -> String {
        format!("{}/lease/{}/{}", self.prefix, key.collection, key.id)
    }

    /// The prefixes a snapshot of `scope` reads.
    pub(crate) fn snapshot_prefixes(&self, scope: &Scope) -> Vec<String> {
        match scope {
            Scope::All => vec![format!("{}/node/", self.prefix), format!("{}/shared/", self.prefix)],
            Scope::Node(node) => vec![format!("{}/node/{node}/", self.prefix)],
            // One prefix per shared collection, not the whole shared prefix: unplaced records of
            // other collections (base credentials, leases, sealed credentials) never reach a
            // node, neither in its snapshot nor in its watches.
            Scope::NodeAndShared { node, shared } => std::iter::once(format!("{}/node/{node}/", self.prefix))
                .chain(shared.iter().map(|collection| format!("{}/shared/{collection}/", self.prefix)))
                .collect(),
        }
    }

    /// The prefixes the feed of `scope` watches: the node's own prefix (and the shared one),
    /// or (scope all) the whole deployment prefix, of which only record keys are kept.
    pub(crate) fn watched(&self, scope: &Scope) -> Vec<String> {
        match scope {
            Scope::All => vec![format!("{}/", self.prefix)],
            Scope::Node(_) | Scope::NodeAndShared { .. } => self.snapshot_prefixes(scope),
        }
    }

    /// The record a record key names: its key and node; `None` for any other key.
    pub(crate) fn parse_record(&self, etcd_key: &[u8]) -> Option<(Key, Option<String>)> {
        let rest = std::str::from_utf8(etcd_key).ok()?.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        if let Some(rest) = rest.strip_prefix("node/") {
            let mut parts = rest.splitn(3, '/');
            let (node, collection, id) = (parts.next()?, parts.next()?, parts.next()?);
            Some((Key::new(collection, id), Some(node.to_owned())))
        } else if let Some(rest) = rest.strip_prefix("shared/") {
            let (collection, id) = rest.split_once('/')?;
            Some((Key::new(collection, id), None))
        } else {
            None
        }
    }
}

/// Checks that a key part or node name can be a path segment: non-empty, no `/`, no NUL.
pub(crate) fn check_segment(what: &str, segment: &str) -> Result<(), StoreError> {
    if segment.is_empty() || segment.contains(['/', '\0']) {
        return Err(StoreError::unavailable(format!("etcd: {what} {segment:?} cannot be a key segment")));
    }
    Ok(())
}

/// Encodes a record value: the header line, then the bytes.
pub(crate) fn encode_record(claims: &[String], value: &[u8]) -> Vec<u8> {
    let header = serde_json::to_vec(&Header { claims: claims.to_vec() }).unwrap_or_else(|_| b"{}".to_vec());
    let mut out = Vec::with_capacity(header.len() + 1 + value.len());
    out.extend_from_slice(&header);
    out.push(b'\n');
    out.extend_from_slice(value);
    out
}

/// Decodes a record stored under `key` at `rev`.
pub(crate) fn decode_record(key: Key, node: Option<String>, stored: &[u8], rev: i64) -> Result<Record, StoreError> {
    let damaged = || StoreError::unavailable(format!("etcd: record {key} is not in the imds record format"));
    let split = stored.iter().position(|b| *b == b'\n').ok_or_else(damaged)?;
    let header: Header = serde_json::from_slice(&stored[..split]).map_err(|_| damaged())?;
    Ok(Record { key, node, claims: header.claims, value: stored[split + 1..].to_vec(), rev: revision(rev) })
}

/// Encodes an index entry.
pub(crate) fn encode_index(entry: &IndexEntry) -> Vec<u8> {
    serde_json::to_vec(entry).unwrap_or_default()
}

/// Decodes an index entry.
pub(crate) fn decode_index(key: &Key, stored: &[u8]) -> Result<IndexEntry, StoreError> {
    serde_json::from_slice(stored)
        .map_err(|err| StoreError::unavailable_from(format!("etcd: index entry of {key} is damaged"), err))
}

/// The store revision of an etcd revision. A fresh cluster is at etcd revision 1 with nothing
/// written, which is the store's "before any write" `0`; every commit has revision 2 or more.
pub(crate) fn revision(etcd: i64) -> Revision {
    if etcd <= 1 {
        Revision(0)
    } else {
        Revision(u64::try_from(etcd).unwrap_or(0))
    }
}

/// The etcd revision of a store revision (`0` maps to etcd's initial revision 1).
pub(crate) fn etcd_revision(rev: Revision) -> i64 {
    i64::try_from(rev.0).unwrap_or(i64::MAX).max(1)
}

/// The end of the key range of every key starting with `prefix`.
pub(crate) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_round_trip() {
        let layout = Layout::new("/imds/v1/");
        let key = Key::new("instances", "i-1");
        let placed = layout.record(&key, Some("hv-7"));
        assert_eq!(placed, "/imds/v1/node/hv-7/instances/i-1");
        assert_eq!(layout.parse_record(placed.as_bytes()), Some((key.clone(), Some("hv-7".into()))));
        let shared = layout.record(&key, None);
        assert_eq!(shared, "/imds/v1/shared/instances/i-1");
        assert_eq!(layout.parse_record(shared.as_bytes()), Some((key.clone(), None)));
        assert_eq!(layout.parse_record(layout.index(&key).as_bytes()), None);
        assert_eq!(layout.parse_record(layout.claim("ipv4/10.0.0.1").as_bytes()), None);
        assert_eq!(layout.lease(&Key::new("refreshers", "app")), "/imds/v1/lease/refreshers/app");
        assert_eq!(layout.parse_record(layout.lease(&Key::new("refreshers", "app")).as_bytes()), None);
        assert_eq!(layout.parse_record(b"/other/node/a/b/c"), None);
    }

    #[test]
    fn a_node_reads_only_its_prefix_and_each_shared_collection() {
        let layout = Layout::new("/imds/v1");
        let scope = Scope::Node("hv-7".into()).with_shared(&["roles", "secrets"]);
        let expected = ["/imds/v1/node/hv-7/", "/imds/v1/shared/roles/", "/imds/v1/shared/secrets/"];
        assert_eq!(layout.snapshot_prefixes(&scope), expected);
        assert_eq!(layout.watched(&scope), expected);
        // An unplaced record of another collection is under none of them.
        let secret = layout.record(&Key::new("role-secrets", "app"), None);
        assert!(!layout.watched(&scope).iter().any(|prefix| secret.starts_with(prefix.as_str())));
        assert_eq!(layout.watched(&Scope::Node("hv-7".into())), ["/imds/v1/node/hv-7/"]);
        assert_eq!(layout.watched(&Scope::All), ["/imds/v1/"]);
    }

    #[test]
    fn record_values_round_trip() {
        let claims = vec!["ipv4/10.0.0.1".to_owned(), "mac/02:00:00:00:00:01".to_owned()];
        let stored = encode_record(&claims, b"{\"id\":\"i-1\"}\nmore");
        let record = decode_record(Key::new("instances", "i-1"), Some("n".into()), &stored, 7).unwrap();
        assert_eq!(record.claims, claims);
        assert_eq!(record.value, b"{\"id\":\"i-1\"}\nmore");
        assert_eq!(record.rev, Revision(7));
        assert!(decode_record(Key::new("instances", "i-1"), None, b"no header", 7).is_err());
    }

    #[test]
    fn revisions_map_the_initial_state_to_zero() {
        assert_eq!(revision(1), Revision(0));
        assert_eq!(revision(2), Revision(2));
        assert_eq!(etcd_revision(Revision(0)), 1);
        assert_eq!(etcd_revision(Revision(9)), 9);
    }

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end("/a/"), b"/a0".to_vec());
        assert!(check_segment("id", "a/b").is_err());
        assert!(check_segment("id", "").is_err());
        assert!(check_segment("id", "i-1").is_ok());
    }
}
