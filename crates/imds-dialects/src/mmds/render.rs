//! The two output formats of an MMDS value: IMDS text and compact JSON with sorted keys.

use serde_json::Value;

/// The IMDS text form, or `None` for a value it cannot show (number, bool, null, array).
///
/// An object lists its keys in byte order, one per line with no final newline, objects with a
/// `/` suffix; a string is its raw text.
pub fn imds(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Object(map) => {
            let mut keys: Vec<(&String, bool)> = map.iter().map(|(key, value)| (key, value.is_object())).collect();
            keys.sort_unstable();
            let lines: Vec<String> =
                keys.into_iter().map(|(key, object)| if object { format!("{key}/") } else { key.clone() }).collect();
            Some(lines.join("\n"))
        }
        _ => None,
    }
}

/// Compact JSON with object keys in byte order, as Firecracker's `serde_json` prints it
/// (whatever order the document was written in).
pub fn json(value: &Value) -> String {
    let mut out = String::new();
    write_json(value, &mut out);
    out
}

fn write_json(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (n, (key, item)) in members.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_json(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}
