//! AWS container credential endpoints' wire strings.

/// EKS Pod Identity's path (`AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.23/v1/credentials`).
pub const POD_IDENTITY_PATH: &str = "/v1/credentials";
/// The prefix of ECS relative URIs (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/<id>`).
pub const RELATIVE_PREFIX: &str = "/v2/credentials/";
/// Every answer is JSON.
pub const JSON: &str = "application/json";
/// The error code of a token or id that is not this caller's.
pub const ACCESS_DENIED: &str = "AccessDenied";
/// The error code of an ECS relative URI no token matches (the ECS agent's).
pub const INVALID_ID: &str = "InvalidIdInRequest";
/// Its message.
pub const CREDENTIALS_NOT_FOUND: &str = "CredentialsV2Request: Credentials not found";
