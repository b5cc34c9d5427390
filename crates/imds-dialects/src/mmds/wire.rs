//! Firecracker MMDS's wire strings: paths, header names, content types and the exact error
//! bodies (no trailing newline). Constants only.

/// The path that mints session tokens (after `//` is collapsed; no trailing `/`).
pub const TOKEN_PATH: &str = "/latest/api/token";

/// Request header carrying a session token (Firecracker's own name).
pub const TOKEN_HEADER: &str = "x-metadata-token";
/// Request header carrying a session token (the EC2 name Firecracker also accepts).
pub const AWS_TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// Request header asking for a token's lifetime, and the response header echoing it.
pub const TTL_HEADER: &str = "x-metadata-token-ttl-seconds";
/// The EC2 spelling of [`TTL_HEADER`].
pub const AWS_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
/// The header a token PUT must not carry.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// How error bodies name [`TTL_HEADER`] (as Firecracker's documentation spells it; the server
/// does not keep the client's spelling of header names).
pub const TTL_HEADER_SPELLED: &str = "X-metadata-token-ttl-seconds";
/// How error bodies name [`AWS_TTL_HEADER`].
pub const AWS_TTL_HEADER_SPELLED: &str = "X-aws-ec2-metadata-token-ttl-seconds";
/// How error bodies name [`FORWARDED_FOR`].
pub const FORWARDED_FOR_SPELLED: &str = "X-Forwarded-For";

/// Content type of IMDS-format answers and of every error.
pub const TEXT_PLAIN: &str = "text/plain";
/// Content type of JSON answers, and the `Accept` value that asks for them.
pub const APPLICATION_JSON: &str = "application/json";
/// The `Allow` header of a 405.
pub const ALLOW: &str = "GET, PUT";

/// E-NOTOKEN (401).
pub const NO_TOKEN: &str =
    "No MMDS token provided. Use `X-metadata-token` or `X-aws-ec2-metadata-token` header to specify the session token.";
/// E-BADTOKEN (401).
pub const BAD_TOKEN: &str = "MMDS token not valid.";
/// E-NOTTL (400).
pub const NO_TTL: &str = "Token time to live value not found. Use `X-metadata-token-ttl-seconds` or `X-aws-ec2-metadata-token-ttl-seconds` header to specify the token's lifetime.";
/// E-METHOD (405).
pub const METHOD_NOT_ALLOWED: &str = "Not allowed HTTP method.";
/// E-TYPE (501).
pub const UNSUPPORTED_TYPE: &str = "Cannot retrieve value. The value has an unsupported type.";
/// E-UNKMETHOD (501).
pub const UNSUPPORTED_METHOD: &str = "Unsupported HTTP method.";
/// E-URI (400).
pub const INVALID_URI: &str = "Invalid URI.";
/// E-REQ (400): a request that declares a body.
pub const INVALID_REQUEST: &str = "Invalid request.";

/// E-NOTFOUND (404) for the raw request target.
pub fn not_found(raw_path: &str) -> String {
    format!("Resource not found: {raw_path}.")
}

/// E-TTLRANGE (400).
pub fn ttl_out_of_range(ttl: u32) -> String {
    format!(
        "Invalid time to live value provided for token: {ttl}. Please provide a value between {} and {}.",
        crate::token::MIN_TTL,
        crate::token::MAX_TTL
    )
}

/// E-TTLPARSE (400). Firecracker puts no space after `Key:` and `Value:`.
pub fn ttl_unparsable(header: &str, value: &str) -> String {
    format!("Invalid header. Reason: Invalid value. Key:{header}; Value:{value}")
}

/// E-XFF (400).
pub fn forwarded_for(header: &str) -> String {
    format!("Invalid header. Reason: Unsupported header name. Key: {header}")
}
