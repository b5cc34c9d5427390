//! What admin handlers read from a request besides its headers: bounded bodies, strict JSON and
//! path parameters, each failure an [`AdminError`] (so a JSON error body, never axum's text).
//!
//! - [`read`]: a body larger than the limit is refused from its `Content-Length` alone, before
//!   a byte of it is read (413 at once, not after a client that never sends the body gives up);
//!   a broken body (a malformed chunk size) is a 400, not a 413.
//! - [`parse_json`]: like `serde_json::from_slice` into a `Value`, except that an object with a
//!   repeated key is refused naming the key's path: with last-wins, `{"ipv4": [..], "ipv4": [..]}`
//!   would silently drop what the operator wrote first.
//! - [`Param`]: a path parameter; a percent-escape that does not decode to UTF-8 (`i-%FF`) is a
//!   JSON 400 naming the parameter. [`QueryParams`]: the query string, likewise.

use std::fmt;

use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::FromRequestParts;
use http::request::Parts;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::error::AdminError;

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than the limit (announced or sent).
    TooLarge,
    /// The transfer itself is broken (a malformed chunk, the client went away).
    Malformed(String),
}

impl BodyError {
    /// As an admin error, with the limit that was exceeded.
    pub fn into_admin(self, limit: usize) -> AdminError {
        match self {
            BodyError::TooLarge => AdminError::BodyTooLarge { limit },
            BodyError::Malformed(message) => AdminError::BadRequest {
                field: String::new(),
                message: format!("request body is malformed: {message}"),
            },
        }
    }
}

/// Reads the whole body, at most `limit` bytes.
pub async fn read(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    // hyper reports a request's Content-Length as the exact size hint.
    if usize::try_from(body.size_hint().lower()).map_or(true, |announced| announced > limit) {
        return Err(BodyError::TooLarge);
    }
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(cause) = source {
            if cause.is::<http_body_util::LengthLimitError>() {
                return BodyError::TooLarge;
            }
            source = cause.source();
        }
        BodyError::Malformed(error.to_string())
    })
}

/// Reads an admin JSON body of at most `limit` bytes (see [`read`] and [`parse_json`]).
pub async fn read_json(body: Body, limit: usize) -> Result<Value, AdminError> {
    let bytes = read(body, limit).await.map_err(|error| error.into_admin(limit))?;
    parse_json(&bytes).map_err(AdminError::from)
}

/// Why a body is not acceptable JSON.
#[derive(Debug, PartialEq, Eq)]
pub enum JsonError {
    /// Not JSON at all.
    Syntax(String),
    /// An object repeats a key; `path` names it (`network.interfaces[0].mac`).
    DuplicateKey {
        /// Where the repeated key is.
        path: String,
    },
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Syntax(message) => f.write_str(message),
            JsonError::DuplicateKey { path } => write!(f, "duplicate key {path}"),
        }
    }
}

impl From<JsonError> for AdminError {
    fn from(error: JsonError) -> Self {
        match error {
            JsonError::Syntax(message) => AdminError::InvalidJson(message),
            JsonError::DuplicateKey { path } => AdminError::DuplicateKey { field: path },
        }
    }
}

/// Parses JSON text into a `Value`, refusing objects that repeat a key.
pub fn parse_json(bytes: &[u8]) -> Result<Value, JsonError> {
    let mut found = None;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict { path: String::new(), duplicate: &mut found }
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    match (parsed, found) {
        (_, Some(path)) => Err(JsonError::DuplicateKey { path }),
        (Ok(value), None) => Ok(value),
        (Err(error), None) => Err(JsonError::Syntax(error.to_string())),
    }
}

/// A `Value` seed that knows its path and reports the first repeated key there or below.
struct Strict<'a> {
    path: String,
    duplicate: &'a mut Option<String>,
}

impl Strict<'_> {
    fn child(&mut self, segment: fmt::Arguments<'_>) -> Strict<'_> {
        Strict { path: format!("{}{segment}", self.path), duplicate: self.duplicate }
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.child(format_args!("[{}]", items.len())))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() { key.clone() } else { format!("{}.{key}", self.path) };
            let value = map.next_value_seed(Strict { path: path.clone(), duplicate: &mut *self.duplicate })?;
            if object.insert(key, value).is_some() {
                *self.duplicate = Some(path);
                return Err(de::Error::custom("duplicate key"));
            }
        }
        Ok(Value::Object(object))
    }
}

/// A path parameter as a `String`, its rejection a JSON [`AdminError`] naming the parameter.
#[derive(Debug)]
pub struct Param(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Param {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Param(value)),
            Err(rejection) => Err(AdminError::BadRequest {
                field: parameter_name(parts),
                message: format!("path parameter is not valid: {}", rejection.body_text()),
            }),
        }
    }
}

/// Query parameters deserialized into `T`, the rejection a JSON [`AdminError`] (a repeated or
/// malformed parameter).
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(QueryParams(value)),
            Err(rejection) => Err(AdminError::BadRequest {
                field: "query".to_owned(),
                message: format!("query string is not valid: {}", rejection.body_text()),
            }),
        }
    }
}

/// The one parameter of an admin route: a role's `name`, an event's `event_id` or an
/// instance's `id`.
fn parameter_name(parts: &Parts) -> String {
    let path = parts.uri.path();
    if path.starts_with("/v1/roles/") {
        "name"
    } else if path.starts_with("/v1/events/") {
        "event_id"
    } else {
        "id"
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_refused_by_path() {
        assert_eq!(
            parse_json(br#"{"a": 1, "b": {"c": [{"d": 1, "d": 2}]}}"#),
            Err(JsonError::DuplicateKey { path: "b.c[0].d".into() })
        );
        assert_eq!(parse_json(br#"{"ipv4": [], "ipv4": []}"#), Err(JsonError::DuplicateKey { path: "ipv4".into() }));
        // Escapes that spell the same key are the same key.
        assert_eq!(parse_json(br#"{"a": 1, "\u0061": 2}"#), Err(JsonError::DuplicateKey { path: "a".into() }));
    }

    #[test]
    fn everything_else_parses_as_serde_json_does() {
        for text in
            [r#"{"a": [1, -2, 3.5, true, null, "x"], "b": {}}"#, "[]", "\"s\"", "12", "null", r#"{"é": {"é": 1}}"#]
        {
            assert_eq!(parse_json(text.as_bytes()), Ok(serde_json::from_str::<Value>(text).unwrap()), "{text}");
        }
        for text in ["{", "[1,]", "{} {}", "", "\"\\ud800\""] {
            assert!(matches!(parse_json(text.as_bytes()), Err(JsonError::Syntax(_))), "{text}");
        }
    }
}
