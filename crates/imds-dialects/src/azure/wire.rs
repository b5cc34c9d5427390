//! Azure IMDS wire strings: content types, header and query names, API versions and the exact
//! error bodies. Constants only; no I/O.

/// Content type of JSON answers, error bodies included.
pub const JSON: &str = "application/json; charset=utf-8";
/// Content type of `format=text` answers.
pub const TEXT: &str = "text/plain; charset=utf-8";

/// The request header every call must carry, with value `true` (any case).
pub const METADATA_HEADER: &str = "metadata";
/// The forwarding header Azure refuses.
pub const FORWARDED_FOR_HEADER: &str = "x-forwarded-for";

/// Query parameter naming the API version.
pub const API_VERSION: &str = "api-version";
/// Query parameter choosing `json` or `text`.
pub const FORMAT: &str = "format";
/// Query parameter asking for `extended` compute data.
pub const EXTENDED: &str = "extended";

/// Every `api-version` the instance and attested endpoints accept, oldest first.
pub const API_VERSIONS: &[&str] = &[
    "2017-03-01",
    "2017-04-02",
    "2017-08-01",
    "2017-10-01",
    "2017-12-01",
    "2018-02-01",
    "2018-04-02",
    "2018-10-01",
    "2019-02-01",
    "2019-03-11",
    "2019-04-30",
    "2019-06-01",
    "2019-06-04",
    "2019-08-01",
    "2019-08-15",
    "2019-11-01",
    "2020-06-01",
    "2020-07-15",
    "2020-09-01",
    "2020-10-01",
    "2020-12-01",
    "2021-01-01",
    "2021-02-01",
    "2021-03-01",
    "2021-05-01",
    "2021-08-01",
    "2021-10-01",
    "2021-11-01",
    "2021-11-15",
    "2021-12-13",
    "2023-07-01",
    "2023-11-15",
    "2024-03-15",
    "2024-07-17",
    "2025-04-07",
];

/// The versions `/metadata/scheduledevents` accepts, oldest first.
pub const SCHEDULED_EVENTS_VERSIONS: &[&str] =
    &["2017-03-01", "2017-08-01", "2017-11-01", "2019-01-01", "2019-08-01", "2020-07-01"];

/// The first version that serves `extended` (`extended=true`).
pub const EXTENDED_SINCE: &str = "2021-03-01";

/// 400 body for a missing or unsupported `api-version` (the three newest versions follow).
pub const BAD_API_VERSION: &str = "Bad request. api-version is invalid or was not specified in the request. \
For more information refer to aka.ms/azureimds";
/// 400 body for a request without `Metadata: true`.
pub const MISSING_METADATA_HEADER: &str = "Bad request. Required metadata header not specified";
/// 400 body for a request carrying `X-Forwarded-For`.
pub const FORWARDED: &str = "Bad request. Request contains an X-Forwarded-For header";
/// 400 body for a repeated query parameter.
pub const DUPLICATE_PARAMETER: &str = "Bad request. Query parameters must not be repeated";
/// 400 body for a `format` other than `json` or `text`.
pub const BAD_FORMAT: &str = "Bad request. format must be json or text";
/// 400 body for a leaf asked for as JSON.
pub const LEAF_NEEDS_TEXT: &str = "Bad request. Leaf nodes must be queried with format=text";
/// 400 body for a non-leaf asked for as text.
pub const TEXT_NEEDS_LEAF: &str = "Bad request. format=text is only supported on leaf nodes";
/// 400 body for a scheduled-events approval that is not a JSON object.
pub const BODY_NOT_OBJECT: &str = "Bad request. The body must be a JSON object";
/// 400 body for a scheduled-events approval naming an event the document does not show.
pub const UNKNOWN_EVENT: &str = "Bad request. EventId is invalid or the event is not scheduled for this VM";
/// 400 body for a malformed `StartRequests` list.
pub const BAD_START_REQUEST: &str = "Bad request. StartRequests must be a list of objects with an EventId";
/// 404 body for a path that names nothing.
pub const NOT_FOUND: &str = "Not found";
/// 405 body for a method the endpoint does not take.
pub const METHOD_NOT_ALLOWED: &str = "Method not allowed";
/// 404 body of `/metadata/loadbalancer` for a VM behind no standard load balancer.
pub const NO_LOAD_BALANCER: &str =
    "No load balancer metadata is found. Please check if your VM is using any non-basic SKU load balancer and retry later.";

/// Error code of the managed-identity endpoint's 400 for a request without `Metadata: true`.
pub const OAUTH_MISSING_HEADER: &str = "bad_request_102";
/// OAuth error code of the managed-identity endpoint's other 400s.
pub const OAUTH_INVALID_REQUEST: &str = "invalid_request";
/// `error_description` when the VM has no managed identity.
pub const IDENTITY_NOT_FOUND: &str = "Identity not found";
/// `error_description` of the identity endpoint without `Metadata: true`.
pub const IDENTITY_MISSING_HEADER: &str = "Required metadata header not specified";
/// `error_description` of the identity endpoint without a supported `api-version`.
pub const IDENTITY_BAD_API_VERSION: &str = "Required query variable 'api-version' is missing or invalid";

/// `error_description` of the token endpoint without `resource`.
pub const IDENTITY_MISSING_RESOURCE: &str = "Required query variable 'resource' is missing";
/// OAuth error code of the token endpoint's `500`.
pub const OAUTH_UNKNOWN_ERROR: &str = "unknown_error";
/// `error_description` when the identity has no valid token now.
pub const IDENTITY_NO_TOKEN: &str = "Failed to retrieve a token for the managed identity. Try again later.";
/// Query parameter naming the token's resource.
pub const RESOURCE: &str = "resource";
/// Query parameter of the attested document's nonce.
pub const NONCE: &str = "nonce";
/// 400 body for a nonce that is not 1 to 10 digits.
pub const BAD_NONCE: &str = "Bad request. nonce must be a string of at most 10 digits";
/// 503 body of the attested document while no signing key is loaded.
pub const NO_SIGNER: &str = "The attestation signing key is not available yet";

/// `compute.provider` of every VM.
pub const PROVIDER: &str = "Microsoft.Compute";
/// Default `compute.azEnvironment`.
pub const AZ_ENVIRONMENT: &str = "AzurePublicCloud";
/// Default `compute.osType`.
pub const OS_TYPE: &str = "Linux";
/// `osProfile.adminUsername` when the record has no `default_user`: the Azure portal's default
/// (Azure requires an admin user, and cloud-init creates it).
pub const DEFAULT_ADMIN_USERNAME: &str = "azureuser";
/// Default `compute.priority`.
pub const PRIORITY: &str = "Regular";
/// Default `extended.compute.ppsType` (not a pre-provisioned VM).
pub const PPS_TYPE: &str = "None";
