//! The EC2 path tree: [`Entry`] nodes tagged with the API version that introduced them, the
//! version filter, path lookup, listings and the override rule. Pure data; no I/O.
//!
//! A version's filter key is its date string; dates compare correctly as strings, `1.0` sorts
//! before every date, and `latest` maps to [`NEWEST`], which sorts after every date. An entry is
//! *visible* at a version when it was introduced no later than that version and it has a value:
//! a leaf with a body, or a directory with at least one visible child. Listings are built from the
//! same visibility test lookups use, so every listed name answers (listings are closed under
//! crawling) and empty directories are neither listed nor served.

use bytes::Bytes;
use serde_json::Value;

use super::wire;

/// Filter key of `latest`: sorts after every dated version.
pub(crate) const NEWEST: &str = "9999-12-31";

/// The filter key of a version path segment, `None` for versions EC2 does not list.
pub(crate) fn filter_key(version: &str) -> Option<&'static str> {
    if version == wire::LATEST {
        return Some(NEWEST);
    }
    wire::VERSIONS.iter().find(|v| **v == version).copied()
}

/// One named child of a directory.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Path segment.
    pub(crate) name: String,
    /// How the parent lists it when not `name` (+ `/` for directories): `0=my-key`, `dynamic`.
    pub(crate) label: Option<String>,
    /// Filter key of the version that introduced it.
    pub(crate) since: &'static str,
    /// What it holds.
    pub(crate) node: Node,
}

/// What an entry holds.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// A known slot with no value for this instance: never listed, 404.
    Absent,
    /// A leaf: body and content type.
    Leaf(Bytes, &'static str),
    /// A directory.
    Dir(Vec<Entry>),
    /// A leaf whose body is computed only when it is requested (credentials, signatures, and
    /// what depends on the clock: the tree itself is built once per record version).
    Computed(super::credentials::Computed),
}

impl Entry {
    /// A `text/plain` leaf, or an absent slot when `value` is `None`.
    pub(crate) fn text(name: &str, since: &'static str, value: Option<String>) -> Self {
        let node = value.map_or(Node::Absent, |v| Node::Leaf(Bytes::from(v), wire::TEXT_PLAIN));
        Self { name: name.to_owned(), label: None, since, node }
    }

    /// A directory.
    pub(crate) fn dir(name: &str, since: &'static str, children: Vec<Entry>) -> Self {
        Self { name: name.to_owned(), label: None, since, node: Node::Dir(children) }
    }

    /// The same entry, listed as `label`.
    pub(crate) fn labelled(self, label: impl Into<String>) -> Self {
        Self { label: Some(label.into()), ..self }
    }

    /// About how many bytes this entry and everything below it hold.
    pub(crate) fn heap_size(&self) -> usize {
        // Each heap block costs its bytes plus the allocator's header, rounded up.
        let block = |len: usize| if len == 0 { 0 } else { (len + 16).next_multiple_of(16) };
        let own = block(self.name.capacity()) + self.label.as_ref().map_or(0, |label| block(label.capacity()));
        own + match &self.node {
            Node::Absent | Node::Computed(_) => 0,
            Node::Leaf(body, _) => block(body.len()) + 32,
            Node::Dir(children) => {
                block(children.capacity() * std::mem::size_of::<Entry>())
                    + children.iter().map(Entry::heap_size).sum::<usize>()
            }
        }
    }

    /// Whether this entry answers at filter key `at`.
    pub(crate) fn visible(&self, at: &str) -> bool {
        self.since <= at
            && match &self.node {
                Node::Absent => false,
                Node::Leaf(..) | Node::Computed(_) => true,
                Node::Dir(children) => children.iter().any(|child| child.visible(at)),
            }
    }

    /// The entry at `path` (segments below this one) if it is visible at `at`.
    pub(crate) fn find<'p>(&self, path: impl IntoIterator<Item = &'p str>, at: &str) -> Option<&Entry> {
        let mut entry = self;
        for segment in path {
            let Node::Dir(children) = &entry.node else {
                return None;
            };
            entry = children.iter().find(|child| child.name == segment && child.visible(at))?;
        }
        entry.visible(at).then_some(entry)
    }

    /// The text of the leaf at `path` when it is visible at `at` and valid UTF-8.
    pub(crate) fn text_at(&self, path: &str, at: &str) -> Option<&str> {
        match &self.find(path.split('/'), at)?.node {
            Node::Leaf(body, _) => std::str::from_utf8(body).ok(),
            _ => None,
        }
    }

    /// A directory's listing at `at`: visible children, one per line, no trailing newline.
    /// Signature leaves are listed only when a signing key is loaded (`signer`).
    /// Written into one string: a listing is served on every crawl of the tree.
    pub(crate) fn listing(children: &[Entry], at: &str, signer: bool) -> String {
        let mut listing = String::with_capacity(children.iter().map(|child| child.name.len() + 2).sum());
        let listed = children.iter().filter(|child| child.visible(at)).filter(|child| {
            signer || !matches!(child.node, Node::Computed(super::credentials::Computed::Signature(_)))
        });
        for (index, child) in listed.enumerate() {
            if index > 0 {
                listing.push('\n');
            }
            match (&child.label, &child.node) {
                (Some(label), _) => listing.push_str(label),
                (None, Node::Dir(_)) => {
                    listing.push_str(&child.name);
                    listing.push('/');
                }
                (None, _) => listing.push_str(&child.name),
            }
        }
        listing
    }

    /// Applies the override object (see the `ec2` module doc for the rule). Entries it creates
    /// count as introduced in `1.0`; anything but a JSON object is ignored.
    pub(crate) fn apply_overrides(&mut self, overrides: &Value) {
        let Some(map) = overrides.as_object() else {
            return;
        };
        for (key, value) in map {
            let segments: Vec<&str> = key.split('/').collect();
            if segments.iter().any(|s| s.is_empty()) {
                continue;
            }
            let node = match value {
                Value::String(text) => Node::Leaf(Bytes::from(text.clone()), wire::TEXT_PLAIN),
                Value::Null => Node::Absent,
                _ => continue,
            };
            self.set(&segments, node);
        }
    }

    /// Puts a `text/plain` leaf at `path` (segments separated by `/`), keeping the version an
    /// existing slot there was introduced in.
    pub(crate) fn set_text(&mut self, path: &str, body: &str) {
        let segments: Vec<&str> = path.split('/').collect();
        self.set(&segments, Node::Leaf(Bytes::from(body.to_owned()), wire::TEXT_PLAIN));
    }

    /// Puts `node` at `path`, creating missing directories; a path through a leaf is ignored.
    fn set(&mut self, path: &[&str], node: Node) {
        let Some((first, rest)) = path.split_first() else {
            self.node = node;
            return;
        };
        let Node::Dir(children) = &mut self.node else {
            return;
        };
        let index = match children.iter().position(|child| child.name == *first) {
            Some(index) => index,
            None => {
                let fresh = if rest.is_empty() { Node::Absent } else { Node::Dir(Vec::new()) };
                // Known children are in EC2's (alphabetical) order; keep it.
                let index = children.partition_point(|child| child.name.as_str() < *first);
                children.insert(index, Entry { name: (*first).to_owned(), label: None, since: "1.0", node: fresh });
                index
            }
        };
        if let Some(child) = children.get_mut(index) {
            child.set(rest, node);
        }
    }
}
