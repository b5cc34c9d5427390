//! The admin API's OpenAPI document, generated from the handlers' annotations.
//!
//! `GET /v1/openapi.json` serves it; `docs/openapi.json` in the repository is a copy that a
//! test keeps identical, so a change to the API cannot land without its document.

use std::borrow::Cow;

use axum::Json;
use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::OpenApi;

/// The document's root.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "imds admin API", description = "Control plane of imds: instance records, their Firecracker MMDS, platform hints, runtime events, roles and credentials, signing keys, health."),
    paths(
        super::instances::list, super::instances::get, super::instances::put,
        super::instances::patch, super::instances::delete, super::import::import, super::mmds::get, super::mmds::put,
        super::mmds::patch, super::mmds::put_config, super::platform::smbios,
        super::container::issue, super::container::list, super::container::revoke,
        super::roles::list, super::roles::get, super::roles::put, super::roles::delete,
        super::roles::put_base, super::roles::refresh,
        super::signing::keys, super::signing::certificates, super::signing::jwks,
        super::signing::rotate, super::signing::put_key,
        super::events::add, super::events::list_instance, super::events::add_selected, super::events::list,
        super::events::get, super::events::cancel,
        super::compat::status, super::compat::bootstrap, super::compat::put_metadata,
        super::compat::get_metadata, super::compat::delete_metadata,
        super::healthz, super::readyz, serve, crate::metrics::serve
    ),
    components(schemas(InstanceSchema, super::error::ErrorBody, super::error::ErrorDetail, super::instances::InstanceList, super::import::ImportSummary,
        super::mmds::FaultMessage, super::mmds::MmdsConfig, super::platform::SmbiosHint,
        super::container::IssueBody, super::container::TokenView, super::container::IssuedToken, super::container::TokenList,
        super::roles::RoleView, super::roles::RoleList, AnyValue, RoleBody, BaseCredentialsBody, SigningKeyBody, VmanMetadata,
        super::events::EventList, super::events::schema::EventSchema, super::events::schema::EventRequest,
        super::events::schema::SelectorRequest)),
    modifiers(&BearerAuth, &Unauthorized),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

/// `GET /v1/openapi.json`
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta", responses((status = 200, description = "This document")))]
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The document as pretty JSON with a final newline (the form committed as `docs/openapi.json`).
pub fn render() -> String {
    let mut text = ApiDoc::openapi().to_pretty_json().expect("the OpenAPI document serializes");
    text.push('\n');
    text
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The operations anyone may call: health probes and this document. Every other operation needs
/// the bearer token over TCP and answers 401 without it.
const UNAUTHENTICATED: &[&str] = &["/healthz", "/readyz", "/status", "/v1/openapi.json"];

/// Marks the unauthenticated operations (`security: []`) and gives every other one its 401.
struct Unauthorized;

impl utoipa::Modify for Unauthorized {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        for (path, item) in &mut openapi.paths.paths {
            let open = UNAUTHENTICATED.contains(&path.as_str());
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                if open {
                    operation.security = Some(Vec::new());
                    continue;
                }
                let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
                let response = ResponseBuilder::new()
                    .description("Missing or wrong bearer token (TCP clients); `WWW-Authenticate: Bearer`")
                    .content("application/json", body.clone())
                    .build();
                operation.responses.responses.insert("401".to_owned(), response.into());
                // Every operation with a parameter can be sent a malformed one.
                if operation.parameters.as_ref().is_some_and(|parameters| !parameters.is_empty()) {
                    let fault = path.contains("/mmds");
                    let schema = if fault { "FaultMessage" } else { "ErrorBody" };
                    let body = ContentBuilder::new().schema(Some(Ref::from_schema_name(schema))).build();
                    let response = ResponseBuilder::new()
                        .description("A malformed parameter or body")
                        .content("application/json", body)
                        .build();
                    operation.responses.responses.entry("400".to_owned()).or_insert_with(|| response.into());
                }
                for parameter in operation.parameters.iter_mut().flatten() {
                    if let Some(schema) = parameter_schema(&parameter.name) {
                        parameter.schema = Some(schema.into());
                    }
                }
            }
        }
    }
}

/// The exact schemas of the parameters several operations share (the server refuses anything
/// else with a 400).
fn parameter_schema(name: &str) -> Option<ObjectBuilder> {
    let string = ObjectBuilder::new().schema_type(SchemaType::new(Type::String));
    Some(match name {
        "id" => string.pattern(Some("^(?!\\.)[A-Za-z0-9._:-]{1,128}$")),
        "name" => string.pattern(Some("^[A-Za-z0-9+=,.@_-]{1,64}$")),
        "event_id" => string.pattern(Some("^instance-event-[0-9a-f]{17}$")),
        "state" => string.enum_values(Some(imds_model::EventState::ALL.iter().map(|state| state.as_str()))),
        "If-Match" => string.pattern(Some("^[ \\t]*(\\*|(W/)?\"[0-9]+\")[ \\t]*$")),
        "If-None-Match" => string.enum_values(Some(["*"])),
        "limit" => {
            ObjectBuilder::new().schema_type(SchemaType::new(Type::Integer)).minimum(Some(1)).maximum(Some(1000))
        }
        // The dialects with an SMBIOS hint (Firecracker's MMDS has none).
        "dialect" => string.enum_values(Some(
            imds_dialects::Dialect::ALL
                .into_iter()
                .filter(|dialect| *dialect != imds_dialects::Dialect::Mmds)
                .map(imds_dialects::Dialect::name),
        )),
        _ => return None,
    })
}

fn string_schema(description: &str) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::new(Type::String)).description(Some(description))
}

/// Any JSON value (a Firecracker MMDS document or patch: objects, arrays, strings, numbers,
/// booleans and null are all accepted).
#[derive(Debug)]
pub struct AnyValue;

impl utoipa::ToSchema for AnyValue {}

impl utoipa::PartialSchema for AnyValue {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(SchemaType::AnyValue).description(Some("Any JSON value")).into()
    }
}

/// The body of `PUT /v1/roles/{name}`.
#[derive(Debug)]
pub struct RoleBody;

impl utoipa::ToSchema for RoleBody {}

impl utoipa::PartialSchema for RoleBody {
    fn schema() -> RefOr<Schema> {
        let kind = |name: &str| {
            ObjectBuilder::new()
                .schema_type(SchemaType::new(Type::Object))
                .property(
                    "type",
                    ObjectBuilder::new().schema_type(SchemaType::new(Type::String)).enum_values(Some([name])),
                )
                .required("type")
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        let text = |description: &str| string_schema(description).min_length(Some(1));
        let seconds = || {
            ObjectBuilder::new().schema_type(SchemaType::new(Type::Integer)).minimum(Some(0)).maximum(Some(u32::MAX))
        };
        let source = utoipa::openapi::schema::OneOfBuilder::new()
            .item(
                kind("static")
                    .property("access_key_id", text("Access key id"))
                    .required("access_key_id")
                    .property("secret_access_key", text("Secret access key (write-only)"))
                    .required("secret_access_key")
                    .property("session_token", text("Session token (write-only)"))
                    .property("expiration", string_schema("RFC 3339 expiry")),
            )
            .item(
                kind("sts")
                    .property("role_arn", text("arn:aws:iam::<account>:role/<name>"))
                    .required("role_arn")
                    .property("session_name", text("Role session name"))
                    .property("endpoint", text("STS endpoint URL"))
                    .property("region", text("STS region"))
                    .property("duration_seconds", seconds())
                    .property("external_id", text("External id"))
                    .property(
                        "session_per_instance",
                        ObjectBuilder::new().schema_type(SchemaType::new(Type::Boolean)).description(Some(
                            "true: each instance's own session, RoleSessionName = its instance id (not with session_name)",
                        )),
                    ),
            )
            .item(
                kind("process")
                    .property("command", ArrayBuilder::new().items(text("argument")).min_items(Some(1)))
                    .required("command")
                    .property("timeout_seconds", seconds()),
            )
            .description(Some("Where the role's credentials come from"));
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::Object))
            .property("source", source)
            .required("source")
            .property(
                "base_credentials",
                utoipa::openapi::schema::OneOfBuilder::new()
                    .item(BaseCredentialsBody::schema())
                    .item(ObjectBuilder::new().schema_type(SchemaType::new(Type::Null)))
                    .description(Some("sts roles only; null or absent keeps those already set")),
            )
            .into()
    }
}

/// The body of `PUT /v1/roles/{name}/base-credentials`: imds's names or AWS's.
#[derive(Debug)]
pub struct BaseCredentialsBody;

impl utoipa::ToSchema for BaseCredentialsBody {}

impl utoipa::PartialSchema for BaseCredentialsBody {
    fn schema() -> RefOr<Schema> {
        let names = |key: &str, secret: &str, token: &str| {
            ObjectBuilder::new()
                .schema_type(SchemaType::new(Type::Object))
                .property(key, string_schema("Access key id").min_length(Some(1)))
                .property(secret, string_schema("Secret access key (write-only)").min_length(Some(1)))
                .property(token, string_schema("Session token (write-only)"))
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
                .required(key)
                .required(secret)
        };
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(names("access_key_id", "secret_access_key", "session_token"))
            .item(names("AccessKeyId", "SecretAccessKey", "Token"))
            .description(Some("Base credentials for AssumeRole, with imds's or AWS's key names"))
            .into()
    }
}

/// The body of VMAN's `PUT /vms/{id}/metadata`: these members only.
#[derive(Debug)]
pub struct VmanMetadata;

impl utoipa::ToSchema for VmanMetadata {}

impl utoipa::PartialSchema for VmanMetadata {
    fn schema() -> RefOr<Schema> {
        let mut object = ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::Object))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        for (field, description) in [
            ("hostname", "Host name"),
            ("user_data", "User data"),
            ("ssh_keys", "OpenSSH public keys, one per line"),
            ("mac", "MAC address"),
            ("ip", "IPv4 address"),
        ] {
            object = object.property(
                field,
                ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                    .description(Some(description)),
            );
        }
        object.into()
    }
}

/// The body of `PUT /v1/signing/key`.
#[derive(Debug)]
pub struct SigningKeyBody;

impl utoipa::ToSchema for SigningKeyBody {}

impl utoipa::PartialSchema for SigningKeyBody {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::Object))
            .property("private_key_pem", string_schema("RSA ≥2048 bits, PKCS#8 or PKCS#1 PEM"))
            .required("private_key_pem")
            .property("certificate_pem", string_schema("Its X.509 certificate, PEM (else self-signed)"))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }
}

/// The instance record as the admin API reads and writes it (`imds_model::Instance`).
#[derive(Debug)]
pub struct InstanceSchema;

impl utoipa::ToSchema for InstanceSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Instance")
    }
}

impl utoipa::PartialSchema for InstanceSchema {
    fn schema() -> RefOr<Schema> {
        // Every text field of a record is non-empty.
        let string = |description: &str| {
            ObjectBuilder::new()
                .schema_type(SchemaType::new(Type::String))
                .min_length(Some(1))
                .description(Some(description))
        };
        let strings = |description: &str, pattern: &str| {
            ArrayBuilder::new()
                .items(ObjectBuilder::new().schema_type(SchemaType::new(Type::String)).pattern(Some(pattern)))
                .description(Some(description))
        };
        let object = |description: &str| {
            ObjectBuilder::new().schema_type(SchemaType::new(Type::Object)).description(Some(description))
        };
        let bytes = |description: &str| {
            ObjectBuilder::new().description(Some(format!(
                "{description}: a string (its UTF-8 bytes) or {{\"base64\": \"...\"}} for binary"
            )))
        };
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::Object))
            .description(Some("An instance: what its guest learns from every dialect. Only `id` is required."))
            .property("id", string("Instance id: 1-128 characters of A-Z a-z 0-9 . _ : -").pattern(Some("^(?!\\.)[A-Za-z0-9._:-]{1,128}$")))
            .required("id")
            .property("name", string("Display name"))
            .property("hostname", string("Host name (RFC 1123)"))
            .property("domain", string("DNS domain; the FQDN is hostname.domain"))
            .property("ipv4", strings("IPv4 addresses guests of this instance call from (unique across instances)", "^[0-9.]{7,15}$"))
            .property("ipv6", strings("IPv6 addresses guests of this instance call from (unique across instances)", "^[0-9A-Fa-f:.]{2,45}$"))
            .property("mac", strings("MAC addresses of the instance (unique across instances), any case", "^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$"))
            .property("host_interfaces", strings("Host-side interface names of the VM's NICs (taps, veths, bridge ports; unique across instances): what `[net] manage` pins the instance's MACs and addresses to", "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,14}$"))
            .property("network", object("What the guest is told of its network: interfaces, nameservers, search, routes"))
            .property("user_data", bytes("User data, served byte for byte"))
            .property("vendor_data", bytes("Vendor data"))
            .property("ssh_keys", ArrayBuilder::new().description(Some("OpenSSH public keys: strings or {key, user, name, expires}")))
            .property("default_user", string("Default login user"))
            .property("password_auth", ObjectBuilder::new().schema_type(SchemaType::new(Type::Boolean)))
            .property("region", string("Region"))
            .property("zone", string("Availability zone"))
            .property("node", string("Serving node (hypervisor) the instance is placed on; only that node serves it"))
            .property("instance_type", string("Instance type"))
            .property("image_id", string("Image id"))
            .property(
                "tags",
                ObjectBuilder::new()
                    .schema_type(SchemaType::new(Type::Object))
                    .additional_properties(Some(AdditionalProperties::FreeForm(true)))
                    .description(Some("Tags: string keys to string values")),
            )
            .property("launch_index", ObjectBuilder::new().schema_type(SchemaType::new(Type::Integer)).minimum(Some(0)))
            .property("account", object("Owning account: {id, name}"))
            .property("created_at", string("Creation time, RFC 3339 UTC"))
            .property("iam_role", string("Role whose credentials the guest receives"))
            .property("identity", object("Identity details, stored verbatim"))
            .property("imds", object("Metadata-service settings: tokens optional|required, hop_limit 1-64, endpoint enabled|disabled, tags off|on (unset: EC2 off, other dialects on)"))
            .property("platform", object("What the VMM presents so the image picks its dialect, stored verbatim"))
            .property("dialects", object("enabled: the dialects served; other members: per-dialect override blocks, stored verbatim"))
            .into()
    }
}
