//! The metadata tree GCE serves, and its three renderings: listings and leaves (the default),
//! recursive JSON (`?recursive=true`, camelCase keys) and recursive text (`?recursive=true&alt=text`,
//! `kebab/path value` lines).

use serde_json::{Map, Value};

/// One node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// A directory: listed one entry per line; an object (or array) in recursive JSON.
    Dir(Dir),
    /// A value.
    Leaf(Leaf),
}

/// A directory's entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dir {
    /// Entries in listing order.
    pub(crate) entries: Vec<Entry>,
    /// Whether recursive JSON renders it as an array (`network-interfaces/`, `disks/`, …).
    pub(crate) array: bool,
}

/// A named entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The path segment.
    pub(crate) name: String,
    /// The key in recursive JSON: camelCase for GCE's own names, verbatim for user-chosen ones.
    pub(crate) key: String,
    /// The value.
    pub(crate) node: Node,
    /// Whether recursive renderings include it (credential leaves and guest attributes are
    /// listed but only served on their own).
    pub(crate) recursive: bool,
}

/// A service-account leaf computed on request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    /// `token`: the role's access token.
    Token,
    /// `identity`: a signed JWT for the service account `email`.
    Identity {
        /// The service account's e-mail.
        email: String,
    },
}

/// A leaf value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Leaf {
    /// Text, served verbatim.
    Text(String),
    /// A number (text alone, a JSON number in recursive JSON).
    Number(u64),
    /// A list served one item per line (`scopes`, `aliases`).
    Lines(Vec<String>),
    /// A list served as a JSON array even alone (`tags`).
    JsonList(Vec<String>),
    /// Computed on request from the context (`token`, `identity`); never in recursive
    /// renderings.
    Credential(Credential),
}

impl Dir {
    /// A directory whose entries are sorted by name, as GCE lists them.
    pub(crate) fn sorted(mut entries: Vec<Entry>) -> Self {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Self { entries, array: false }
    }

    /// An array directory: entries named `0`, `1`, …
    pub(crate) fn array(nodes: Vec<Node>) -> Self {
        let entries =
            nodes.into_iter().enumerate().map(|(i, node)| Entry::user(i.to_string(), node)).collect::<Vec<_>>();
        Self { entries, array: true }
    }

    /// The entry named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.name == name)
    }

    /// The listing lines: one per entry, directories with a trailing `/`.
    pub(crate) fn listing(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|entry| match entry.node {
                Node::Dir(_) => format!("{}/", entry.name),
                Node::Leaf(_) => entry.name.clone(),
            })
            .collect()
    }
}

impl Entry {
    /// An entry with one of GCE's own kebab-case names; its JSON key is the camelCase form.
    pub(crate) fn new(name: &str, node: Node) -> Self {
        Self { name: name.to_owned(), key: camel_case(name), node, recursive: true }
    }

    /// An entry with a user-chosen name (attribute, e-mail, index), verbatim in JSON too.
    pub(crate) fn user(name: String, node: Node) -> Self {
        Self { key: name.clone(), name, node, recursive: true }
    }

    /// A text leaf with one of GCE's own names.
    pub(crate) fn text(name: &str, value: impl Into<String>) -> Self {
        Self::new(name, Node::Leaf(Leaf::Text(value.into())))
    }

    /// A directory with one of GCE's own names, entries sorted.
    pub(crate) fn dir(name: &str, entries: Vec<Entry>) -> Self {
        Self::new(name, Node::Dir(Dir::sorted(entries)))
    }

    /// Leaves it out of recursive renderings.
    pub(crate) fn not_recursive(mut self) -> Self {
        self.recursive = false;
        self
    }
}

impl Node {
    /// The recursive JSON form; `None` for a computed leaf.
    pub(crate) fn to_json(&self) -> Option<Value> {
        Some(match self {
            Node::Dir(dir) if dir.array => Value::Array(
                dir.entries.iter().filter(|e| e.recursive).filter_map(|entry| entry.node.to_json()).collect(),
            ),
            Node::Dir(dir) => {
                let mut object = Map::new();
                for entry in dir.entries.iter().filter(|e| e.recursive) {
                    if let Some(value) = entry.node.to_json() {
                        object.insert(entry.key.clone(), value);
                    }
                }
                Value::Object(object)
            }
            Node::Leaf(Leaf::Text(text)) => Value::String(text.clone()),
            Node::Leaf(Leaf::Number(number)) => Value::from(*number),
            Node::Leaf(Leaf::Lines(items) | Leaf::JsonList(items)) => {
                Value::Array(items.iter().cloned().map(Value::String).collect())
            }
            Node::Leaf(Leaf::Credential(_)) => return None,
        })
    }

    /// The recursive text form: `path value` lines, each ending in a newline.
    pub(crate) fn to_text_lines(&self, prefix: &str, out: &mut String) {
        match self {
            Node::Dir(dir) => {
                for entry in dir.entries.iter().filter(|e| e.recursive) {
                    let path = if prefix.is_empty() { entry.name.clone() } else { format!("{prefix}/{}", entry.name) };
                    entry.node.to_text_lines(&path, out);
                }
            }
            Node::Leaf(leaf) => {
                let values = match leaf {
                    Leaf::Text(text) => vec![text.clone()],
                    Leaf::Number(number) => vec![number.to_string()],
                    Leaf::Lines(items) | Leaf::JsonList(items) => items.clone(),
                    Leaf::Credential(_) => Vec::new(),
                };
                for value in values {
                    if prefix.is_empty() {
                        out.push_str(&value);
                    } else {
                        out.push_str(prefix);
                        out.push(' ');
                        out.push_str(&value);
                    }
                    out.push('\n');
                }
            }
        }
    }
}

/// `network-interfaces` → `networkInterfaces`.
fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_of_gce_names() {
        assert_eq!(camel_case("network-interfaces"), "networkInterfaces");
        assert_eq!(camel_case("external-ip"), "externalIp");
        assert_eq!(camel_case("id"), "id");
    }
}
