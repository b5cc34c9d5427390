//! [`UserData`]: the opaque blob behind `user_data` and `vendor_data`.
//!
//! In JSON it is either a string (its UTF-8 bytes) or `{"base64": "..."}` for binary content
//! (gzip, MIME multipart with binary parts). It serialises back as a plain string whenever the
//! bytes are valid UTF-8, so cloud-config stays readable in the admin API. Size limits are the
//! validator's job ([`Instance::parse`](crate::Instance::parse)), not this type's.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The one key of the object form.
const BASE64_KEY: &str = "base64";

/// Standard alphabet; padding is written on output but not insisted on when reading, since
/// hand-written documents often drop it.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a JSON value is not user data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserDataError {
    /// Neither a string nor an object.
    #[error("expected a string or an object {{\"base64\": \"...\"}}")]
    WrongType,
    /// An object with a key other than `base64`.
    #[error("unknown field {0:?}; the object form takes only \"base64\"")]
    UnknownKey(String),
    /// An object without the `base64` key.
    #[error("missing field \"base64\"")]
    MissingBase64,
    /// `base64` was not a string.
    #[error("\"base64\" must be a string")]
    Base64NotString,
    /// `base64` did not decode.
    #[error("invalid base64: {0}")]
    BadBase64(#[source] base64::DecodeError),
}

/// Bytes handed to the guest verbatim: cloud-config, a script, a gzip archive, anything.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct UserData(Vec<u8>);

impl UserData {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes as standard padded base64.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.0)
    }

    /// Reads the JSON form: a string, or `{"base64": "..."}`. ASCII whitespace inside the
    /// base64 text is ignored (wrapped base64 is common).
    pub fn from_json(value: &Value) -> Result<Self, UserDataError> {
        match value {
            Value::String(s) => Ok(Self(s.as_bytes().to_vec())),
            Value::Object(map) => {
                if let Some(key) = map.keys().find(|k| *k != BASE64_KEY) {
                    return Err(UserDataError::UnknownKey(key.clone()));
                }
                let text = match map.get(BASE64_KEY) {
                    None => return Err(UserDataError::MissingBase64),
                    Some(Value::String(s)) => s,
                    Some(_) => return Err(UserDataError::Base64NotString),
                };
                let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
                LENIENT.decode(compact).map(Self).map_err(UserDataError::BadBase64)
            }
            _ => Err(UserDataError::WrongType),
        }
    }
}

impl From<Vec<u8>> for UserData {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<&[u8]> for UserData {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl From<&str> for UserData {
    fn from(text: &str) -> Self {
        Self(text.as_bytes().to_vec())
    }
}

impl fmt::Debug for UserData {
    /// Prints only the length: user data often carries secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserData({} bytes)", self.0.len())
    }
}

impl Serialize for UserData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(BASE64_KEY, &self.to_base64())?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for UserData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_json(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn utf8_serialises_as_a_plain_string() {
        let data = UserData::from("#cloud-config\nruncmd: [echo héllo]\n");
        assert_eq!(serde_json::to_value(&data).unwrap(), json!("#cloud-config\nruncmd: [echo héllo]\n"));
    }

    #[test]
    fn binary_serialises_as_base64() {
        let all: Vec<u8> = (0..=255u8).collect();
        let data = UserData::from(all.clone());
        let json = serde_json::to_value(&data).unwrap();
        assert_eq!(json, json!({"base64": STANDARD.encode(&all)}));
        assert_eq!(UserData::from_json(&json).unwrap().as_bytes(), all.as_slice());
    }

    #[test]
    fn json_forms() {
        let cases: &[(Value, Result<&[u8], UserDataError>)] = &[
            (json!("hi"), Ok(b"hi")),
            (json!(""), Ok(b"")),
            (json!({"base64": "aGk="}), Ok(b"hi")),
            (json!({"base64": "aGk"}), Ok(b"hi")),
            (json!({"base64": "aG\nk="}), Ok(b"hi")),
            (json!({"base64": "a$k="}), Err(UserDataError::BadBase64(base64::DecodeError::InvalidPadding))),
            (json!({"base64": "aGk=", "gzip": true}), Err(UserDataError::UnknownKey("gzip".into()))),
            (json!({}), Err(UserDataError::MissingBase64)),
            (json!({"base64": 1}), Err(UserDataError::Base64NotString)),
            (json!(3), Err(UserDataError::WrongType)),
            (json!(null), Err(UserDataError::WrongType)),
        ];
        for (input, expected) in cases {
            let got = UserData::from_json(input);
            match (got, expected) {
                (Ok(data), Ok(bytes)) => assert_eq!(data.as_bytes(), *bytes, "{input}"),
                (Err(UserDataError::BadBase64(_)), Err(UserDataError::BadBase64(_))) => {}
                (got, expected) => {
                    assert_eq!(got.map(|d| d.into_bytes()), expected.clone().map(<[u8]>::to_vec), "{input}")
                }
            }
        }
    }

    #[test]
    fn debug_hides_the_bytes() {
        let data = UserData::from("password: hunter2");
        assert_eq!(format!("{data:?}"), "UserData(17 bytes)");
        assert_eq!(data.len(), 17);
        assert!(!data.is_empty());
    }

    proptest! {
        #[test]
        fn json_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let data = UserData::from(bytes);
            let text = serde_json::to_string(&data).unwrap();
            let back: UserData = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(back, data);
        }
    }
}
