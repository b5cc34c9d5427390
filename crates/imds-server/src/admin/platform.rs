//! `GET /v1/instances/{id}/smbios?dialect=D`: the SMBIOS values a VMM must present so that
//! cloud-init in the instance's image picks dialect `D` (see `imds_dialects::platform`), with
//! the same values as QEMU `-smbios` arguments.

use axum::extract::State;
use axum::Json;
use imds_dialects::platform::{self, Smbios};
use imds_dialects::Dialect;
use serde::{Deserialize, Serialize};

use super::instances::{load, parse_id};
use super::{AdminError, AdminState};

/// Query parameters of the SMBIOS endpoint.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SmbiosQuery {
    /// The dialect the image should pick (a name of `dialects.enabled` but `mmds`: `ec2`, `gce`,
    /// `azure`, …); default: the record's `platform.dialect`.
    pub dialect: Option<String>,
}

/// The platform hint for one instance and dialect.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SmbiosHint {
    /// The instance id.
    pub instance: String,
    /// The dialect the values select.
    pub dialect: String,
    /// SMBIOS fields: manufacturer, product, version, serial, uuid, sku, family (type 1) and
    /// asset_tag (type 3, chassis); absent fields are left to the VMM.
    #[schema(value_type = Object)]
    pub smbios: Smbios,
    /// The values as QEMU arguments (`-smbios`, `type=1,…`, …), commas doubled, not shell-quoted.
    pub qemu: Vec<String>,
    /// For NoCloud: the kernel command-line argument that selects the same seed (for VMMs
    /// without SMBIOS, such as Firecracker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_cmdline: Option<String>,
}

/// `GET /v1/instances/{id}/smbios`
#[utoipa::path(get, path = "/v1/instances/{id}/smbios", tag = "instances",
    params(("id" = String, Path, description = "Instance id"), SmbiosQuery),
    responses(
        (status = 200, description = "The SMBIOS values for the dialect", body = SmbiosHint),
        (status = 400, description = "Unknown dialect, none given, or one without SMBIOS (mmds)", body = super::error::ErrorBody),
        (status = 404, description = "No such instance", body = super::error::ErrorBody)))]
pub async fn smbios(
    State(state): State<AdminState>,
    super::body::Param(id): super::body::Param,
    super::body::QueryParams(query): super::body::QueryParams<SmbiosQuery>,
) -> Result<Json<SmbiosHint>, AdminError> {
    let id = parse_id(&id)?;
    let requested = match query.dialect.as_deref() {
        Some(name) => Some(Dialect::from_name(name).ok_or_else(|| bad_dialect(format!("unknown dialect {name:?}")))?),
        None => None,
    };
    let (instance, _) = load(&state, &id).await?;
    let dialect = requested.or_else(|| platform::platform_dialect(&instance)).ok_or_else(|| {
        bad_dialect("give ?dialect= (the record has no platform.dialect naming a dialect imds serves)".into())
    })?;
    let smbios = platform::smbios(&instance, dialect, &state.dialects).ok_or_else(|| {
        bad_dialect(format!("{} has no SMBIOS hint (Firecracker presents no SMBIOS)", dialect.name()))
    })?;
    Ok(Json(SmbiosHint {
        instance: id.as_str().to_owned(),
        dialect: dialect.name().to_owned(),
        qemu: smbios.qemu_args(),
        kernel_cmdline: (dialect == Dialect::NoCloud).then(|| platform::nocloud_seed(&state.dialects)),
        smbios,
    }))
}

fn bad_dialect(message: String) -> AdminError {
    AdminError::BadRequest { field: "dialect".into(), message }
}
