//! A tiny YAML emitter for the documents NoCloud and Hetzner serve (`meta-data`,
//! `network-config`, Hetzner `metadata`).
//!
//! Why not a crate: `serde_yaml` is deprecated and its forks (`serde_yml`, `serde_norway`) carry
//! a whole parser for what is here one direction over [`serde_json::Value`]. The subset emitted
//! is block mappings and sequences whose every string (keys included) is double-quoted, so no
//! value can turn into a boolean, a number, a date or a document marker when a YAML 1.1 loader
//! (cloud-init's PyYAML) reads it back; numbers, booleans and null are plain. Empty collections
//! are written in flow form (`{}`, `[]`).

use serde_json::Value;

/// The document for `value` (a mapping or a sequence), ending in a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_block(&mut out, value, 0),
        Value::Array(items) if !items.is_empty() => write_block(&mut out, value, 0),
        scalar => {
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
    out
}

/// Writes a non-empty mapping or sequence as block lines indented by `indent` spaces.
fn write_block(out: &mut String, value: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                out.push_str(&pad);
                out.push_str(&quote(key));
                out.push(':');
                write_child(out, child, indent + 2);
            }
        }
        Value::Array(items) => {
            for item in items {
                if is_block(item) {
                    // `- first: …` then the rest at the item's indentation (compact form).
                    let mut nested = String::new();
                    write_block(&mut nested, item, indent + 2);
                    out.push_str(&pad);
                    out.push_str("- ");
                    out.push_str(&nested[indent + 2..]);
                } else {
                    out.push_str(&pad);
                    out.push_str("- ");
                    out.push_str(&scalar_text(item));
                    out.push('\n');
                }
            }
        }
        scalar => {
            out.push_str(&pad);
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
}

/// Writes what follows `key:`: a scalar on the same line, a block on the next lines.
fn write_child(out: &mut String, child: &Value, indent: usize) {
    if is_block(child) {
        out.push('\n');
        write_block(out, child, indent);
    } else {
        out.push(' ');
        out.push_str(&scalar_text(child));
        out.push('\n');
    }
}

/// Whether `value` is written as a block (a non-empty mapping or sequence).
fn is_block(value: &Value) -> bool {
    match value {
        Value::Object(map) => !map.is_empty(),
        Value::Array(items) => !items.is_empty(),
        _ => false,
    }
}

/// A scalar or an empty collection on one line.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        Value::Array(_) => "[]".to_owned(),
        Value::Object(_) => "{}".to_owned(),
    }
}

/// `s` as a YAML double-quoted scalar. Escapes `"`, `\` and every character outside YAML 1.1's
/// printable set (C0 and C1 controls, DEL, U+FFFE/U+FFFF), so the text reads back unchanged.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20
                || ((c as u32) >= 0x7f && (c as u32) <= 0x9f)
                || c == '\u{fffe}'
                || c == '\u{ffff}' =>
            {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_blocks_and_quoting() {
        let doc = json!({
            "instance-id": 42,
            "name": "yes",
            "keys": ["a \"b\"", "c\\d\u{7f}"],
            "empty": [],
            "none": {},
            "nets": [{"ip": "10.0.0.2", "alias": ["10.0.0.3"]}, {"ip": null}],
            "flag": true
        });
        let expected = "\"instance-id\": 42\n\"name\": \"yes\"\n\"keys\":\n  - \"a \\\"b\\\"\"\n  - \"c\\\\d\\u007f\"\n\
                        \"empty\": []\n\"none\": {}\n\"nets\":\n  - \"ip\": \"10.0.0.2\"\n    \"alias\":\n      - \"10.0.0.3\"\n\
                        \x20 - \"ip\": null\n\"flag\": true\n";
        assert_eq!(to_yaml(&doc), expected);
    }

    #[test]
    fn top_level_sequence() {
        assert_eq!(to_yaml(&json!([{"a": 1}, 2])), "- \"a\": 1\n- 2\n");
        assert_eq!(to_yaml(&json!([])), "[]\n");
    }
}
