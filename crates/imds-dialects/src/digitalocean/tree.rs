//! The text tree under `/metadata/v1/`: the JSON document walked as directories.
//!
//! Objects are directories (listed one name per line, sub-directories with a trailing `/`),
//! arrays of objects are directories of their indexes (`interfaces/public/0/`), arrays of
//! strings are leaves with one item per line (`public-keys`, `dns/nameservers`), booleans and
//! numbers are their JSON text. Top-level names follow the tree's spelling (`id`, `user-data`,
//! `vendor-data`, `public-keys`, `auth-key`), and an interface's `ip_address` is `address`.
//! `tags` is listed as `tags/` and answers its list at `tags` and `tags/`.

use bytes::Bytes;
use imds_model::Instance;
use serde_json::Value;

/// Tree name → JSON key at the top level.
const TOP_LEVEL: &[(&str, &str)] = &[
    ("id", "droplet_id"),
    ("user-data", "user_data"),
    ("vendor-data", "vendor_data"),
    ("public-keys", "public_keys"),
    ("auth-key", "auth_key"),
];

/// The body at `segments` (empty: the root listing), or `None` for 404.
pub(crate) fn lookup(instance: &Instance, doc: &Value, segments: &[&str]) -> Option<Bytes> {
    let Some((first, rest)) = segments.split_first() else {
        return Some(listing(doc, true, false).into());
    };
    if TOP_LEVEL.iter().any(|(_, json)| json == first) {
        return None; // JSON spellings are not tree names.
    }
    let key = TOP_LEVEL.iter().find(|(tree, _)| tree == first).map_or(*first, |(_, json)| *json);
    let value = doc.get(key)?;
    // User and vendor data are served as the record's bytes, not the JSON string.
    let raw = match key {
        "user_data" => instance.user_data.as_ref(),
        "vendor_data" => instance.vendor_data.as_ref(),
        _ => None,
    };
    if let (Some(data), true) = (raw, rest.is_empty()) {
        return Some(Bytes::copy_from_slice(data.as_bytes()));
    }
    walk(value, rest, key == "interfaces")
}

fn walk(value: &Value, segments: &[&str], in_interfaces: bool) -> Option<Bytes> {
    let Some((first, rest)) = segments.split_first() else {
        return render(value, in_interfaces);
    };
    let child = match value {
        Value::Object(map) => {
            let key = if in_interfaces && *first == "address" { "ip_address" } else { *first };
            if in_interfaces && *first == "ip_address" {
                return None;
            }
            map.get(key)?
        }
        Value::Array(items) if items.iter().all(Value::is_object) => {
            let index: usize = first.parse().ok().filter(|_| first == &"0" || !first.starts_with('0'))?;
            items.get(index)?
        }
        _ => return None,
    };
    walk(child, rest, in_interfaces)
}

/// A node's body: a listing for directories, the text for leaves.
fn render(value: &Value, in_interfaces: bool) -> Option<Bytes> {
    Some(match value {
        Value::Null => return None,
        Value::String(s) => Bytes::copy_from_slice(s.as_bytes()),
        Value::Bool(b) => b.to_string().into(),
        Value::Number(n) => n.to_string().into(),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            (0..items.len()).map(|i| format!("{i}/")).collect::<Vec<_>>().join("\n").into()
        }
        Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join("\n").into(),
        Value::Object(_) => listing(value, false, in_interfaces).into(),
    })
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A directory listing: one name per line, sub-directories with a trailing `/`.
fn listing(value: &Value, top: bool, in_interfaces: bool) -> String {
    let Some(map) = value.as_object() else {
        return String::new();
    };
    map.iter()
        .filter(|(_, child)| !child.is_null())
        .map(|(key, child)| {
            let name = if top {
                TOP_LEVEL.iter().find(|(_, json)| json == key).map_or(key.as_str(), |(tree, _)| *tree)
            } else if in_interfaces && key == "ip_address" {
                "address"
            } else {
                key.as_str()
            };
            let dir = child.is_object() || (child.is_array() && (name == "tags" || child_objects(child)));
            if dir {
                format!("{name}/")
            } else {
                name.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn child_objects(value: &Value) -> bool {
    value.as_array().is_some_and(|items| !items.is_empty() && items.iter().all(Value::is_object))
}
