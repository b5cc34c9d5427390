//! Rules for validated free-text fields: host and domain names, display names, labels that end
//! up in URL paths, tag keys and values, and RFC 3339 timestamps.
//!
//! Each rule is a pure `fn(&str) -> Result<(), String>` whose error is the message shown at the
//! field's path; the walk in `parse` decides which rule applies where.

/// Longest generic text value, in characters.
const MAX_TEXT: usize = 255;

/// A DNS host or domain name: 1 to 253 characters, dot-separated labels of 1 to 63
/// `[A-Za-z0-9-]` not starting or ending with `-`.
pub(crate) fn hostname(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 253 {
        return Err(format!("is {} characters; the limit is 253", s.len()));
    }
    for label in s.split('.') {
        if label.is_empty() {
            return Err(format!("{s:?} has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is {} characters; the limit is 63", label.len()));
        }
        if let Some(c) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
            return Err(format!("{s:?} contains {c:?}; labels allow A-Z a-z 0-9 -"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} must not start or end with '-'"));
        }
    }
    Ok(())
}

/// A Linux interface name (a VM's host-side tap, veth or bridge port): 1 to 15 characters of
/// `[A-Za-z0-9._-]`, not `.` or `..`.
pub(crate) fn interface_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 15 {
        return Err(format!("{s:?}: an interface name has 1 to 15 characters"));
    }
    if s == "." || s == ".." || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        return Err(format!("{s:?}: an interface name has only letters, digits, '-', '_' and '.'"));
    }
    Ok(())
}

/// Free text: 1 to 255 characters, no control characters.
pub(crate) fn text(s: &str) -> Result<(), String> {
    let len = s.chars().count();
    if len == 0 {
        return Err("must not be empty".into());
    }
    if len > MAX_TEXT {
        return Err(format!("is {len} characters; the limit is {MAX_TEXT}"));
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// Text that becomes one URL path segment (region, zone, interface and key names): [`text`]
/// without `/`.
pub(crate) fn segment(s: &str) -> Result<(), String> {
    text(s)?;
    if s.contains('/') {
        return Err("must not contain '/'".into());
    }
    Ok(())
}

/// A serving node's name: 1 to 253 ASCII letters, digits, `.`, `_` or `-` (it becomes a key
/// segment in the store).
pub fn node_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 253 {
        return Err(format!("is {} characters; the limit is 253", s.len()));
    }
    if let Some(bad) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("must hold only letters, digits, '.', '_' and '-', not {bad:?}"));
    }
    Ok(())
}

/// A tag key: 1 to 128 characters, no `/` (keys become path segments), no control characters.
/// Whether EC2 can expose the tag key `key` in instance metadata (`tags/instance/<key>`): EC2
/// refuses to turn tags-in-metadata on while a key has any character outside
/// `[A-Za-z0-9+=.,_:@-]` (spaces and `/` among them) or is `.`, `..` or `_index`.
pub fn ec2_metadata_tag_key(key: &str) -> Result<(), String> {
    if matches!(key, "." | ".." | "_index") {
        return Err(format!("EC2 cannot expose a tag named {key:?} in instance metadata (imds.tags is on)"));
    }
    match key.chars().find(|c| !(c.is_ascii_alphanumeric() || "+-=.,_:@".contains(*c))) {
        Some(c) => Err(format!(
            "EC2 cannot expose this tag key in instance metadata (imds.tags is on): {c:?} is not one of \
             A-Z a-z 0-9 + - = . , _ : @"
        )),
        None => Ok(()),
    }
}

pub(crate) fn tag_key(s: &str) -> Result<(), String> {
    let len = s.chars().count();
    if len == 0 {
        return Err("tag key must not be empty".into());
    }
    if len > 128 {
        return Err(format!("tag key is {len} characters; the limit is 128"));
    }
    if s.contains('/') {
        return Err("tag key must not contain '/'".into());
    }
    if s.chars().any(char::is_control) {
        return Err("tag key must not contain control characters".into());
    }
    Ok(())
}

/// A tag value: at most 256 characters (may be empty).
pub(crate) fn tag_value(s: &str) -> Result<(), String> {
    let len = s.chars().count();
    if len > 256 {
        return Err(format!("tag value is {len} characters; the limit is 256"));
    }
    Ok(())
}

/// An RFC 3339 UTC timestamp of the shape `YYYY-MM-DDTHH:MM:SS[.fraction]Z`.
pub(crate) fn timestamp(s: &str) -> Result<(), String> {
    let bad = || format!("expected an RFC 3339 UTC time like 2026-08-01T00:00:00Z, got {s:?}");
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(range)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) =
        (digits(0..4), digits(5..7), digits(8..10), digits(11..13), digits(14..16), digits(17..19))
    else {
        return Err(bad());
    };
    let rest = &b[19..];
    let fraction_ok = match rest {
        [b'Z'] => true,
        [b'.', middle @ .., b'Z'] => !middle.is_empty() && middle.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !fraction_ok {
        return Err(bad());
    }
    let Some(days_in_month) =
        i32::try_from(year).ok().zip(u8::try_from(month).ok()).and_then(|(y, m)| crate::time::days_in_month(y, m))
    else {
        return Err(format!("{s:?} has month {month}"));
    };
    let days_in_month = u32::from(days_in_month);
    if day == 0 || day > days_in_month {
        return Err(format!("{s:?} has day {day}, not in 1..={days_in_month}"));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(format!("{s:?} is not a valid time of day"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        let label63 = "a".repeat(63);
        let label64 = "a".repeat(64);
        let long = vec!["a".repeat(63); 4].join("."); // 255 chars
        let cases: &[(&str, bool)] = &[
            ("web-1", true),
            ("web-1.example.internal", true),
            ("A0", true),
            (&label63, true),
            (&label64, false),
            (&long, false),
            ("", false),
            ("-web", false),
            ("web-", false),
            ("web..x", false),
            ("web.", false),
            (".web", false),
            ("web_1", false),
            ("wéb", false),
            ("web 1", false),
        ];
        for (input, ok) in cases {
            assert_eq!(hostname(input).is_ok(), *ok, "{input:?}");
        }
    }

    #[test]
    fn text_rules() {
        assert!(text("web 1 (prod) ✓").is_ok());
        assert!(text("").is_err());
        assert!(text("a\nb").is_err());
        assert!(text(&"x".repeat(255)).is_ok());
        assert!(text(&"x".repeat(256)).is_err());
        assert!(segment("eu-west-1").is_ok());
        assert!(segment("eu/west").is_err());
        assert!(segment("").is_err());
    }

    #[test]
    fn tag_rules() {
        assert!(tag_key("Name").is_ok());
        assert!(tag_key(&"k".repeat(128)).is_ok());
        assert!(tag_key(&"k".repeat(129)).is_err());
        assert!(tag_key("").is_err());
        assert!(tag_key("a/b").is_err());
        assert!(tag_value("").is_ok());
        assert!(tag_value(&"v".repeat(256)).is_ok());
        assert!(tag_value(&"v".repeat(257)).is_err());
    }

    #[test]
    fn timestamps() {
        let cases: &[(&str, bool)] = &[
            ("2026-08-01T00:00:00Z", true),
            ("2026-08-01T23:59:60Z", true),
            ("2026-08-01T00:00:00.123456Z", true),
            ("2024-02-29T00:00:00Z", true),
            ("2000-02-29T00:00:00Z", true),
            ("1900-02-29T00:00:00Z", false),
            ("2026-02-29T00:00:00Z", false),
            ("2026-04-31T00:00:00Z", false),
            ("2026-13-01T00:00:00Z", false),
            ("2026-00-01T00:00:00Z", false),
            ("2026-08-00T00:00:00Z", false),
            ("2026-08-01T24:00:00Z", false),
            ("2026-08-01T00:60:00Z", false),
            ("2026-08-01T00:00:00", false),
            ("2026-08-01T00:00:00+00:00", false),
            ("2026-08-01 00:00:00Z", false),
            ("2026-08-01T00:00:00.Z", false),
            ("2026-8-01T00:00:00Z", false),
            ("+026-08-01T00:00:00Z", false),
            ("", false),
            ("2026-08-01T00:00:00Zé", false),
        ];
        for (input, ok) in cases {
            assert_eq!(timestamp(input).is_ok(), *ok, "{input:?}");
        }
    }
}
