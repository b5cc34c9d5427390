//! A small EC2-shaped text tree, for the dialects that serve one of their own beside EC2's
//! (Vultr's `/latest/`, Exoscale's `/1.0/` and `/latest/`): directories list their children one
//! per line with no trailing newline, sub-directories with a trailing `/`; leaves are bytes.
//! Leaves answer with or without a trailing slash, directories too.

use bytes::Bytes;

/// One node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// A directory: its children in listing order.
    Dir(Vec<(String, Node)>),
    /// A leaf's bytes.
    Leaf(Bytes),
}

impl Node {
    /// A leaf holding `text`.
    pub(crate) fn text(text: impl Into<String>) -> Node {
        Node::Leaf(Bytes::from(text.into()))
    }

    /// The node at `path` (segments separated by `/`, leading and trailing ones ignored).
    pub(crate) fn find(&self, path: &str) -> Option<&Node> {
        path.split('/').filter(|s| !s.is_empty()).try_fold(self, |node, segment| match node {
            Node::Dir(children) => children.iter().find(|(name, _)| name == segment).map(|(_, child)| child),
            Node::Leaf(_) => None,
        })
    }

    /// What the node answers: a listing for a directory, the bytes for a leaf.
    pub(crate) fn body(&self) -> Bytes {
        match self {
            Node::Leaf(bytes) => bytes.clone(),
            Node::Dir(children) => children
                .iter()
                .map(|(name, child)| match child {
                    Node::Dir(_) => format!("{name}/"),
                    Node::Leaf(_) => name.clone(),
                })
                .collect::<Vec<_>>()
                .join("\n")
                .into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_list_and_leaves_answer_with_or_without_slashes() {
        let tree = Node::Dir(vec![
            ("meta-data".into(), Node::Dir(vec![("hostname".into(), Node::text("h"))])),
            ("user-data".into(), Node::text("u")),
        ]);
        assert_eq!(tree.body(), "meta-data/\nuser-data");
        assert_eq!(tree.find("/meta-data/hostname/").unwrap().body(), "h");
        assert_eq!(tree.find("meta-data").unwrap().body(), "hostname");
        assert!(tree.find("user-data/x").is_none());
        assert!(tree.find("nothing").is_none());
    }
}
