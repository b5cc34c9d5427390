//! Query strings as every dialect reads them: `application/x-www-form-urlencoded` pairs
//! (`form_urlencoded`), names and values percent-decoded, `+` as a space, empty pairs skipped.

use std::borrow::Cow;

/// The `(name, value)` pairs of a request's query string, decoded, in order; a pair without
/// `=` has an empty value.
pub(crate) fn pairs(query: Option<&str>) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_decoded_and_empty_ones_skipped() {
        let decoded: Vec<(String, String)> = pairs(Some("audience=https%3A%2F%2Fexample.com&&flag&a+b=c+d%2B&bad=%zz"))
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect();
        let expected = [("audience", "https://example.com"), ("flag", ""), ("a b", "c d+"), ("bad", "%zz")];
        assert_eq!(decoded, expected.map(|(n, v)| (n.to_owned(), v.to_owned())));
        assert_eq!(pairs(None).count(), 0);
    }
}
