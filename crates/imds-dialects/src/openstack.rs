//! The OpenStack dialect (Nova's metadata API under `/openstack`), as a pure renderer.
//!
//! `/openstack` (with or without a trailing `/`) lists the dated versions that are not in the
//! future, then `latest`; `/openstack/<version>` lists the files that version has; unknown
//! versions, files a version does not have and every other path are Nova's 404 page. Paths are
//! normalised as Nova does (repeated and trailing slashes, `.` and `..` segments). Files:
//! - `meta_data.json` (module `meta_data`): `uuid` (rule R1), `meta` (the tags), `public_keys`
//!   and `keys` (from `ssh_keys`), `hostname`, `name`, `launch_index`, `availability_zone`,
//!   `random_seed` (≥ 2013-04-04), `project_id` (`account.id`, ≥ 2015-10-15), `devices`
//!   (≥ 2016-06-30), `dedicated_cpus` (≥ 2020-10-14);
//! - `user_data`: the record's bytes verbatim, 404 and unlisted when it has none;
//! - `password` (≥ 2013-04-04, module `password`): the guest's write-once secret;
//! - `vendor_data.json` (≥ 2013-10-17): the record's `vendor_data` text as
//!   `{"cloud-init": "<text>"}` (what cloud-init takes from it), else `{}`;
//! - `network_data.json` (≥ 2015-10-15, module `network`);
//! - `vendor_data2.json` (≥ 2016-10-06): `{}`.
//!
//! Methods are not checked except on `password` (as Nova). The EC2 tree cloud-init also crawls
//! is the EC2 dialect's: its token gate (`imds.tokens`) applies there, never here.
//!
//! # Overrides
//!
//! `dialects.openstack` is an object with any of: `uuid` (a UUID string), `project_id`,
//! `availability_zone` (strings), `meta` (an object of strings; replaces the tags), `devices`
//! (an array, served verbatim), `dedicated_cpus` (an array of integers), `vendor_data` and
//! `vendor_data2` (any JSON document, served as `vendor_data.json` / `vendor_data2.json`),
//! `network_data` (an object, served as `network_data.json` instead of the generated one).
//! [`check_overrides`] names unknown and ill-typed keys; the renderer ignores them.

use http::StatusCode;
use serde_json::{json, Value};

use crate::{Context, GuestRequest, GuestResponse, Subject};

mod meta_data;
mod network;
mod overrides;
mod password;
pub mod wire;

pub use meta_data::instance_uuid;
pub use overrides::check as check_overrides;

/// Answers one OpenStack request for the subject instance.
pub fn respond(subject: &Subject<'_>, request: &GuestRequest, context: &Context<'_>) -> GuestResponse {
    let Some(segments) = normalise(&request.path) else {
        return not_found();
    };
    let today = imds_model::time::format_date(context.now);
    match segments.as_slice() {
        [] => text(versions(&today).join("\n")),
        [version] => match resolve(version) {
            Some(version) => text(files(subject, version).join("\n")),
            None => not_found(),
        },
        [version, file] => match resolve(version) {
            Some(version) if files(subject, version).contains(file) => serve(subject, request, context, version, file),
            _ => not_found(),
        },
        _ => not_found(),
    }
}

/// Nova's 404 page.
pub fn not_found() -> GuestResponse {
    error(StatusCode::NOT_FOUND, wire::NOT_FOUND)
}

/// A WebOb error page.
pub(crate) fn error(status: StatusCode, page: (&str, &str)) -> GuestResponse {
    GuestResponse::new(status, wire::TEXT_HTML, wire::error_page(page))
}

fn text(body: impl Into<bytes::Bytes>) -> GuestResponse {
    GuestResponse::new(StatusCode::OK, wire::TEXT_PLAIN, body)
}

fn json_document(content_type: &'static str, value: &Value) -> GuestResponse {
    let body = serde_json::to_vec(value).expect("a JSON value always serializes");
    GuestResponse::new(StatusCode::OK, content_type, body)
}

/// The segments after `/openstack`, normalised as `posixpath.normpath` would; `None` when the
/// path leaves `/openstack`.
fn normalise(path: &str) -> Option<Vec<&str>> {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            _ => segments.push(segment),
        }
    }
    match segments.split_first() {
        Some((&"openstack", rest)) => Some(rest.to_vec()),
        _ => None,
    }
}

/// The listed versions: dated ones up to `today` (`YYYY-MM-DD`), then `latest`.
fn versions(today: &str) -> Vec<&'static str> {
    wire::VERSIONS.iter().copied().filter(|version| *version <= today).chain([wire::LATEST]).collect()
}

/// The dated version a path segment names (`latest` is the newest Nova knows).
fn resolve(version: &str) -> Option<&'static str> {
    if version == wire::LATEST {
        return wire::VERSIONS.last().copied();
    }
    wire::VERSIONS.iter().copied().find(|known| *known == version)
}

/// The files of `version`, in Nova's order.
fn files(subject: &Subject<'_>, version: &str) -> Vec<&'static str> {
    let mut files = vec![wire::META_DATA];
    if subject.instance.user_data.is_some() {
        files.push(wire::USER_DATA);
    }
    let since = [
        (wire::GRIZZLY, wire::PASSWORD),
        (wire::HAVANA, wire::VENDOR_DATA),
        (wire::LIBERTY, wire::NETWORK_DATA),
        (wire::NEWTON_TWO, wire::VENDOR_DATA2),
    ];
    files.extend(since.iter().filter(|(from, _)| version >= *from).map(|(_, file)| *file));
    files
}

/// One file of `version`, which has it.
fn serve(
    subject: &Subject<'_>,
    request: &GuestRequest,
    context: &Context<'_>,
    version: &str,
    file: &str,
) -> GuestResponse {
    let instance = subject.instance;
    let overrides = overrides::Overrides::of(instance);
    match file {
        wire::META_DATA => json_document(wire::APPLICATION_JSON, &meta_data::render(instance, version, context)),
        wire::USER_DATA => match &instance.user_data {
            Some(data) => text(bytes::Bytes::copy_from_slice(data.as_bytes())),
            None => not_found(),
        },
        wire::PASSWORD => password::respond(subject, request),
        wire::VENDOR_DATA => {
            let default = || match instance.vendor_data.as_ref().map(|data| std::str::from_utf8(data.as_bytes())) {
                Some(Ok(text)) => json!({"cloud-init": text}),
                _ => json!({}),
            };
            json_document(wire::APPLICATION_JSON, &overrides.vendor_data.cloned().unwrap_or_else(default))
        }
        wire::VENDOR_DATA2 => {
            json_document(wire::APPLICATION_JSON, &overrides.vendor_data2.cloned().unwrap_or_else(|| json!({})))
        }
        wire::NETWORK_DATA => {
            let document = match overrides.network_data {
                Some(document) => document.clone(),
                None => network::render(instance, instance_uuid(instance)),
            };
            json_document(wire::TEXT_PLAIN, &document)
        }
        _ => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn future_versions_are_hidden() {
        assert_eq!(versions("2025-04-03").last(), Some(&"latest"));
        assert!(!versions("2025-04-03").contains(&"2025-04-04"));
        assert!(versions("2025-04-04").contains(&"2025-04-04"));
    }

    #[test]
    fn paths_normalise_as_nova_does() {
        assert_eq!(normalise("/openstack/"), Some(vec![]));
        assert_eq!(normalise("//openstack//latest/./meta_data.json/"), Some(vec!["latest", "meta_data.json"]));
        assert_eq!(normalise("/openstack/latest/../2012-08-10"), Some(vec!["2012-08-10"]));
        assert_eq!(normalise("/openstack/.."), None);
        assert_eq!(normalise("/openstack/../.."), None);
    }
}
