//! Guest paths as JSON pointers (RFC 6901), with Firecracker's path cleaning.
//!
//! Firecracker takes the request target raw (no percent-decoding, query string included),
//! collapses every `//` into `/`, drops one trailing `/` for a GET, and resolves the result
//! with `serde_json`'s pointer rules: `~1` is `/`, then `~0` is `~`; array indexes are decimal
//! without `+` or leading zeros. [`escape`] is the inverse of the token decoding.

use serde_json::Value;

/// Collapses every run of `/` into one (Firecracker's `sanitize_uri`): `////` becomes `/`.
pub fn collapse(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    out
}

/// The pointer a GET of `raw` resolves: collapsed, with one trailing `/` removed (so `/` is
/// the root, the empty pointer).
pub fn for_get(raw: &str) -> String {
    let mut pointer = collapse(raw);
    if pointer.ends_with('/') {
        pointer.pop();
    }
    pointer
}

/// Resolves `pointer` in `document`: `None` when it names nothing.
pub fn resolve<'a>(document: &'a Value, pointer: &str) -> Option<&'a Value> {
    if pointer.is_empty() {
        return Some(document);
    }
    let rest = pointer.strip_prefix('/')?;
    rest.split('/').map(unescape).try_fold(document, |node, token| match node {
        Value::Object(map) => map.get(&token),
        Value::Array(items) => parse_index(&token).and_then(|index| items.get(index)),
        _ => None,
    })
}

/// Decodes one reference token: `~1` is `/`, then `~0` is `~` (so `~01` is the key `~1`).
pub fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Encodes a key as a reference token: the inverse of [`unescape`].
pub fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// An array index: decimal, no sign, no leading zero except `0` itself.
fn parse_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}
