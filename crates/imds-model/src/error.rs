//! Validation errors: [`Invalid`] collects one [`FieldError`] per problem found in a document.
//!
//! The admin API turns an [`Invalid`] into its JSON error body, so every message names its field
//! by path (`"ipv4[1]"`, `"network.interfaces[0].mac"`, `"tags.Name"`); the empty path means the
//! document as a whole.

use std::fmt;

use serde::Serialize;

/// One problem in an instance document.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct FieldError {
    /// Path of the offending field, e.g. `"network.interfaces[0].mac"`; `""` for the whole record.
    pub field: String,
    /// What is wrong, lower-case without a final period.
    pub message: String,
}

impl FieldError {
    /// A new error at `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Every problem found in an instance document, in document order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Invalid {
    /// The problems; never empty when returned by this crate.
    pub errors: Vec<FieldError>,
}

impl Invalid {
    /// An `Invalid` holding a single error.
    pub fn one(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { errors: vec![FieldError::new(field, message)] }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_joins_field_and_message() {
        let invalid = Invalid {
            errors: vec![
                FieldError::new("id", "expected a string"),
                FieldError::new("ipv4[1]", "duplicate of ipv4[0]"),
                FieldError::new("", "record is 5 bytes; the limit is 4"),
            ],
        };
        assert_eq!(
            invalid.to_string(),
            "id: expected a string; ipv4[1]: duplicate of ipv4[0]; record is 5 bytes; the limit is 4"
        );
    }

    #[test]
    fn field_error_serializes_as_an_object() {
        let json = serde_json::to_value(FieldError::new("id", "missing")).unwrap();
        assert_eq!(json, serde_json::json!({"field": "id", "message": "missing"}));
    }
}
