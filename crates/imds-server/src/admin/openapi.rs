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
    info(title = "imds admin API", description = "Control plane of imds: instance records, their Firecracker MMDS, platform hints, roles and credentials, signing keys, health."),
    paths(
        super::instances::list, super::instances::get, super::instances::put,
        super::instances::patch, super::instances::delete, super::import::import, super::mmds::get, super::mmds::put,
        super::mmds::patch, super::mmds::put_config, super::platform::smbios,
        super::roles::list, super::roles::get, super::roles::put, super::roles::delete,
        super::roles::put_base, super::roles::refresh,
        super::signing::keys, super::signing::certificates, super::signing::jwks,
        super::signing::rotate, super::signing::put_key,
        super::compat::status, super::compat::bootstrap, super::compat::put_metadata,
        super::compat::get_metadata, super::compat::delete_metadata,
        super::healthz, super::readyz, serve
    ),
    components(schemas(InstanceSchema, super::error::ErrorBody, super::error::ErrorDetail, super::instances::InstanceList, super::import::ImportSummary,
        super::mmds::FaultMessage, super::mmds::MmdsConfig, super::platform::SmbiosHint,
        super::roles::RoleView, super::roles::RoleList)),
    modifiers(&BearerAuth),
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
        let string = |description: &str| {
            ObjectBuilder::new().schema_type(SchemaType::new(Type::String)).description(Some(description))
        };
        let strings = |description: &str| {
            ArrayBuilder::new()
                .items(ObjectBuilder::new().schema_type(SchemaType::new(Type::String)))
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
            .property("id", string("Instance id: 1-128 characters of A-Z a-z 0-9 . _ : -"))
            .required("id")
            .property("name", string("Display name"))
            .property("hostname", string("Host name (RFC 1123)"))
            .property("domain", string("DNS domain; the FQDN is hostname.domain"))
            .property("ipv4", strings("IPv4 addresses guests of this instance call from (unique across instances)"))
            .property("ipv6", strings("IPv6 addresses guests of this instance call from (unique across instances)"))
            .property("mac", strings("MAC addresses of the instance (unique across instances), any case"))
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
            .property("imds", object("Metadata-service settings: tokens optional|required, hop_limit 1-64, endpoint enabled|disabled, tags off|on"))
            .property("platform", object("What the VMM presents so the image picks its dialect, stored verbatim"))
            .property("dialects", object("enabled: the dialects served; other members: per-dialect override blocks, stored verbatim"))
            .into()
    }
}
