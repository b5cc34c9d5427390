//! EC2-shaped text trees, for the dialects whose metadata is a tree of plain-text leaves under
//! `/<version>/` (Alibaba, Tencent): a directory lists its entries one per line, directories
//! with a trailing `/`, no trailing newline; a leaf answers its bytes. Overrides in the EC2 form
//! (`{"path/under/meta-data": "text" | null}`) replace, add or remove entries.
//!
//! Leaves whose value changes with time (role credentials) are [`Node::Computed`]: the dialect
//! renders them per request from its [`Context`](crate::Context).

use bytes::Bytes;
use serde_json::Value;

/// One entry of a tree.
#[derive(Debug, Clone)]
pub(crate) enum Node<C> {
    /// A directory: its entries, in listing order.
    Dir(Vec<(String, Node<C>)>),
    /// A leaf: its bytes and content type.
    Leaf(Bytes, &'static str),
    /// A leaf the dialect computes per request.
    Computed(C),
}

/// What a path found.
pub(crate) enum Found<'a, C> {
    /// A directory's listing.
    Listing(String),
    /// A leaf.
    Leaf(&'a Bytes, &'static str),
    /// A computed leaf.
    Computed(&'a C),
}

impl<C> Node<C> {
    /// A directory of `entries`.
    pub(crate) fn dir(entries: Vec<(&str, Node<C>)>) -> Self {
        Node::Dir(entries.into_iter().map(|(name, node)| (name.to_owned(), node)).collect())
    }

    /// A `text/plain` leaf.
    pub(crate) fn text(body: impl Into<String>) -> Self {
        Node::Leaf(Bytes::from(body.into()), "text/plain")
    }

    /// The entry at `segments` (empty: this one).
    pub(crate) fn find(&self, segments: &[&str]) -> Option<Found<'_, C>> {
        let Some((first, rest)) = segments.split_first() else {
            return Some(match self {
                Node::Dir(entries) => Found::Listing(listing(entries)),
                Node::Leaf(body, content_type) => Found::Leaf(body, content_type),
                Node::Computed(computed) => Found::Computed(computed),
            });
        };
        match self {
            Node::Dir(entries) => entries.iter().find(|(name, _)| name == first)?.1.find(rest),
            _ => None,
        }
    }

    /// Applies EC2-style overrides: each key a `/`-separated path, each value a string (the leaf
    /// at that path, directories created as needed) or `null` (the path removed). Other values
    /// and paths through a leaf are ignored (the admin API refuses them first).
    pub(crate) fn apply_overrides(&mut self, overrides: &Value) {
        let Some(map) = overrides.as_object() else { return };
        for (path, value) in map {
            let segments: Vec<&str> = path.split('/').collect();
            if segments.iter().any(|s| s.is_empty()) {
                continue;
            }
            match value {
                Value::String(text) => self.set(&segments, Node::text(text.clone())),
                Value::Null => self.remove(&segments),
                _ => {}
            }
        }
    }

    fn set(&mut self, segments: &[&str], node: Node<C>) {
        let Node::Dir(entries) = self else { return };
        let Some((first, rest)) = segments.split_first() else { return };
        let position = entries.iter().position(|(name, _)| name == first);
        if rest.is_empty() {
            match position {
                Some(i) => entries[i].1 = node,
                None => entries.push(((*first).to_owned(), node)),
            }
            return;
        }
        let i = position.unwrap_or_else(|| {
            entries.push(((*first).to_owned(), Node::Dir(Vec::new())));
            entries.len() - 1
        });
        entries[i].1.set(rest, node);
    }

    fn remove(&mut self, segments: &[&str]) {
        let Node::Dir(entries) = self else { return };
        match segments {
            [] => {}
            [last] => entries.retain(|(name, _)| name != last),
            [first, rest @ ..] => {
                if let Some((_, child)) = entries.iter_mut().find(|(name, _)| name == first) {
                    child.remove(rest);
                }
            }
        }
    }
}

/// A directory's listing: one entry per line, directories with a trailing `/`.
fn listing<C>(entries: &[(String, Node<C>)]) -> String {
    let lines: Vec<String> = entries
        .iter()
        .map(|(name, node)| if matches!(node, Node::Dir(_)) { format!("{name}/") } else { name.clone() })
        .collect();
    lines.join("\n")
}

/// Checks an override block of this form; `(field, message)` per problem.
pub(crate) fn check_overrides(block: &Value) -> Vec<(String, String)> {
    let Some(map) = block.as_object() else {
        return vec![(String::new(), "must be an object of meta-data paths to strings or null".to_owned())];
    };
    map.iter()
        .filter_map(|(key, value)| {
            if key.split('/').any(str::is_empty) {
                return Some((
                    key.clone(),
                    "path segments must not be empty (no leading, trailing or double `/`)".into(),
                ));
            }
            match value {
                Value::String(_) | Value::Null => None,
                _ => Some((key.clone(), "must be a string (the text served) or null (removes the path)".into())),
            }
        })
        .collect()
}

/// `path` split after its version: `("latest", ["meta-data", "instance-id"])`. Repeated and
/// trailing slashes are ignored. `None` for the root.
pub(crate) fn split(path: &str) -> Option<(&str, Vec<&str>)> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let version = segments.next()?;
    Some((version, segments.collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tree() -> Node<()> {
        Node::dir(vec![
            ("a", Node::text("1")),
            ("d", Node::dir(vec![("b", Node::text("2")), ("c", Node::Computed(()))])),
        ])
    }

    fn listing_at(node: &Node<()>, path: &[&str]) -> Option<String> {
        match node.find(path)? {
            Found::Listing(listing) => Some(listing),
            _ => None,
        }
    }

    #[test]
    fn listings_mark_directories_and_overrides_edit_the_tree() {
        let mut tree = tree();
        assert_eq!(listing_at(&tree, &[]).unwrap(), "a\nd/");
        assert!(matches!(tree.find(&["d", "c"]), Some(Found::Computed(()))));
        assert!(tree.find(&["a", "x"]).is_none());
        tree.apply_overrides(&json!({"d/b": null, "e/f": "3", "a": "9", "a/z": "ignored"}));
        assert_eq!(listing_at(&tree, &[]).unwrap(), "a\nd/\ne/");
        assert_eq!(listing_at(&tree, &["d"]).unwrap(), "c");
        assert!(matches!(tree.find(&["e", "f"]), Some(Found::Leaf(body, _)) if body == "3"));
        assert!(matches!(tree.find(&["a"]), Some(Found::Leaf(body, _)) if body == "9"));
        assert_eq!(split("//latest//meta-data/"), Some(("latest", vec!["meta-data"])));
        assert_eq!(split("/"), None);
        assert_eq!(check_overrides(&json!({"a/": "x", "b": 1, "c": null})).len(), 2);
    }
}
