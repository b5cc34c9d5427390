//! Bearer-token authentication of the admin API's TCP listeners.
//!
//! Unix-socket clients are trusted (the socket is mode 0600: only its owner can connect).
//! TCP clients must send `Authorization: Bearer <token>`, unless the server runs in `--dev`
//! on loopback without a token, which it announces at start.

use std::fmt;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::error::AdminError;
use crate::listener::Peer;

/// The admin API's bearer token. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token; surrounding white space (a trailing newline in a token file) is dropped.
    pub fn new(token: &str) -> Self {
        Self(token.trim().to_owned())
    }

    /// Whether `candidate` is this token, in time independent of where they differ.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// Whether the token is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Middleware: rejects TCP requests without the right bearer token (when one is configured).
pub(super) async fn require_token(
    State(token): State<Option<Token>>,
    request: Request,
    next: Next,
) -> Result<Response, AdminError> {
    let over_tcp = matches!(request.extensions().get::<Peer>(), Some(Peer::Tcp { .. }));
    if let (true, Some(token)) = (over_tcp, &token) {
        let presented = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer_credentials);
        if !presented.is_some_and(|presented| token.matches(presented)) {
            return Err(AdminError::Unauthorized);
        }
    }
    Ok(next.run(request).await)
}

/// The credentials of an `Authorization: Bearer <token>` value. The scheme is case-insensitive
/// (RFC 9110 §11.1): `bearer`, `BEARER` and `Bearer` are the same scheme.
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| credentials.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_is_not() {
        assert_eq!(bearer_credentials("Bearer abc"), Some("abc"));
        assert_eq!(bearer_credentials("bearer abc"), Some("abc"));
        assert_eq!(bearer_credentials("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_credentials("Basic abc"), None);
        assert_eq!(bearer_credentials("Bearerabc"), None);
        assert_eq!(bearer_credentials("Bearer"), None);
    }

    #[test]
    fn token_matches_only_itself_and_hides_in_debug() {
        let token = Token::new("s3cret\n");
        assert!(token.matches("s3cret"));
        assert!(!token.matches("s3cre"));
        assert!(!token.matches("s3cret2"));
        assert!(!token.matches("S3cret"));
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
    }
}
