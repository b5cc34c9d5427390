//! Interface names and patterns (`tap*`): what nftables' `iifname` matches.

use std::fmt;

/// The longest Linux interface name (`IFNAMSIZ` - 1).
pub const MAX_NAME: usize = 15;

/// Checks an interface name: 1–15 bytes of letters, digits, `-`, `_`, `.`; safe to quote in an
/// nft script.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("{name:?}: an interface name has 1 to {MAX_NAME} characters"));
    }
    if name == "." || name == ".." || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        return Err(format!("{name:?}: an interface name has only letters, digits, '-', '_' and '.'"));
    }
    Ok(())
}

/// An interface name, or a prefix followed by `*` (nftables' own wildcard).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern(String);

impl Pattern {
    /// Parses `tap*`, `fc-*`, `br0`; a `*` only at the end.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let name = text.strip_suffix('*').unwrap_or(text);
        if name.contains('*') {
            return Err(format!("{text:?}: '*' may only end a pattern, as in \"tap*\""));
        }
        if name.is_empty() && text == "*" {
            return Err(
                "\"*\" would match every interface, loopback and uplinks included; name the guest interfaces".into()
            );
        }
        check_name(name)?;
        Ok(Pattern(text.to_owned()))
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == self.0,
        }
    }

    /// Whether this is a wildcard (may match nothing until VMs start).
    pub fn is_wildcard(&self) -> bool {
        self.0.ends_with('*')
    }

    /// The pattern as written (and as nft reads it).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let tap = Pattern::parse("tap*").unwrap();
        assert!(tap.matches("tap0") && tap.matches("tap") && !tap.matches("xtap0"));
        let br = Pattern::parse("br-imds").unwrap();
        assert!(br.matches("br-imds") && !br.matches("br-imds2"));
        for bad in ["*", "t*p", "", "a b", "\"x", "sixteen-chars-xx", "tap/0"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }
}
