//! Azure's WireServer (`168.63.129.16:80`), as much of it as a provisioning agent needs to finish
//! provisioning: cloud-init's Azure datasource (and WALinuxAgent) fetch the goal state and post a
//! health report ("Ready") before they apply the metadata; without an answer cloud-init retries for
//! 20 minutes. Served on its own guest listener (off by default), for the caller's instance:
//!
//! - `GET /?comp=versions`: the protocol versions (`2012-11-30`).
//! - `GET /machine/?comp=goalstate` (also without the slash): the goal state XML, incarnation 1,
//!   `Container/ContainerId` (a UUID derived from the instance: UUIDv5 of
//!   `imds:wireserver-container/<id>`) and one `RoleInstance` whose `InstanceId` is
//!   `<vmId>.<name>`, state `Started`. No `Configuration` URLs: no certificates (cloud-init
//!   reads the SSH keys from IMDS), no extensions.
//! - `POST /machine?comp=health` (also with the slash): a health report; `200` with an empty
//!   body when it parses and names this goal state's container and role instance, `400`
//!   otherwise. [`health_report`] gives the reported state, for the server's log.
//!
//! Anything else is `404`. The answers carry the instance's own identifiers only.

use http::{Method, StatusCode};
use imds_model::Instance;
use uuid::Uuid;

use crate::{GuestRequest, GuestResponse};

/// The WireServer protocol version cloud-init and WALinuxAgent speak.
pub const PROTOCOL_VERSION: &str = "2012-11-30";
/// The goal state's incarnation: imds never changes an instance's goal state.
const INCARNATION: u32 = 1;

const XML: &str = "text/xml; charset=utf-8";

/// The container id the goal state names for `instance`.
pub fn container_id(instance: &Instance) -> String {
    let name = format!("imds:wireserver-container/{}", instance.id.as_str());
    Uuid::new_v5(&Uuid::NAMESPACE_URL, name.as_bytes()).hyphenated().to_string()
}

/// The role instance id the goal state names for `instance`: `<vmId>.<name>`.
pub fn role_instance_id(instance: &Instance) -> String {
    let name = instance.name.as_deref().or(instance.hostname.as_deref()).unwrap_or(instance.id.as_str());
    format!("{}.{}", super::vm_id(instance), name)
}

/// Answers one WireServer request for `instance`.
pub fn respond(instance: &Instance, request: &GuestRequest) -> GuestResponse {
    let path = request.path.as_str();
    let comp = crate::query::pairs(request.query.as_deref())
        .find_map(|(name, value)| (name == "comp").then_some(value))
        .unwrap_or_default();
    let is_get = request.method == Method::GET || request.method == Method::HEAD;
    match (path, comp.as_ref()) {
        ("/", "versions") if is_get => GuestResponse::new(StatusCode::OK, XML, versions()),
        ("/machine" | "/machine/", "goalstate") if is_get => {
            GuestResponse::new(StatusCode::OK, XML, goal_state(instance))
        }
        ("/machine" | "/machine/", "health") if request.method == Method::POST => match health_report(&request.body) {
            Some(report)
                if report.container_id == container_id(instance)
                    && report.instance_id == role_instance_id(instance) =>
            {
                GuestResponse::new(StatusCode::OK, XML, "")
            }
            _ => GuestResponse::new(StatusCode::BAD_REQUEST, XML, ""),
        },
        _ => GuestResponse::new(StatusCode::NOT_FOUND, XML, ""),
    }
}

fn versions() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Versions>\n  <Preferred>\n    <Version>{PROTOCOL_VERSION}</Version>\n  </Preferred>\n  <Supported>\n    <Version>{PROTOCOL_VERSION}</Version>\n  </Supported>\n</Versions>\n"
    )
}

fn goal_state(instance: &Instance) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
<GoalState xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:noNamespaceSchemaLocation=\"goalstate10.xsd\">\n\
  <Version>{PROTOCOL_VERSION}</Version>\n\
  <Incarnation>{INCARNATION}</Incarnation>\n\
  <Machine>\n\
    <ExpectedState>Started</ExpectedState>\n\
    <StopRolesDeadlineHint>300000</StopRolesDeadlineHint>\n\
    <ExpectHealthReport>FALSE</ExpectHealthReport>\n\
  </Machine>\n\
  <Container>\n\
    <ContainerId>{container}</ContainerId>\n\
    <RoleInstanceList>\n\
      <RoleInstance>\n\
        <InstanceId>{role}</InstanceId>\n\
        <State>Started</State>\n\
      </RoleInstance>\n\
    </RoleInstanceList>\n\
  </Container>\n\
</GoalState>\n",
        container = escape(&container_id(instance)),
        role = escape(&role_instance_id(instance)),
    )
}

/// What a health report says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// `Container/ContainerId`.
    pub container_id: String,
    /// `Container/RoleInstanceList/Role/InstanceId`.
    pub instance_id: String,
    /// `Health/State`: `Ready` or `NotReady`.
    pub state: String,
    /// `Health/Details/SubStatus` (`ProvisioningFailed`), when given.
    pub substatus: Option<String>,
    /// `Health/Details/Description`, when given.
    pub description: Option<String>,
}

/// Reads a health report body (the XML cloud-init and WALinuxAgent post); `None` when it lacks
/// the container, the role instance or the state.
pub fn health_report(body: &[u8]) -> Option<HealthReport> {
    let text = std::str::from_utf8(body).ok()?;
    let container = element(text, "Container")?;
    Some(HealthReport {
        container_id: element(container, "ContainerId")?.trim().to_owned(),
        instance_id: element(container, "InstanceId")?.trim().to_owned(),
        state: element(container, "State")?.trim().to_owned(),
        substatus: element(container, "SubStatus").map(|s| unescape(s.trim())),
        description: element(container, "Description").map(|s| unescape(s.trim())),
    })
}

/// The text between the first `<name>` and the following `</name>`.
fn element<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&close)? + start;
    Some(&text[start..end])
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use imds_model::Limits;
    use serde_json::json;

    fn instance() -> Instance {
        Instance::parse(&json!({"id": "3c8a0e53-95f7-4c0b-9a8e-6d3b2c1f7a42", "name": "web-1"}), &Limits::default())
            .unwrap()
    }

    /// The health report cloud-init 22.4 posts (its template, filled in).
    fn report(container: &str, role: &str, state: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Health xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">\n  <GoalStateIncarnation>1</GoalStateIncarnation>\n  <Container>\n    <ContainerId>{container}</ContainerId>\n    <RoleInstanceList>\n      <Role>\n        <InstanceId>{role}</InstanceId>\n        <Health>\n          <State>{state}</State>\n          <Details>\n            <SubStatus>ProvisioningFailed</SubStatus>\n            <Description>no &lt;user&gt;</Description>\n          </Details>\n        </Health>\n      </Role>\n    </RoleInstanceList>\n  </Container>\n</Health>\n"
        )
    }

    #[test]
    fn goal_state_names_the_instance() {
        let instance = instance();
        let answer = respond(&instance, &GuestRequest::new(Method::GET, "/machine/?comp=goalstate"));
        assert_eq!(answer.status, StatusCode::OK);
        let xml = std::str::from_utf8(&answer.body).unwrap();
        assert!(xml.contains("<Incarnation>1</Incarnation>"), "{xml}");
        assert!(xml.contains(&format!("<ContainerId>{}</ContainerId>", container_id(&instance))), "{xml}");
        assert!(xml.contains("<InstanceId>3c8a0e53-95f7-4c0b-9a8e-6d3b2c1f7a42.web-1</InstanceId>"), "{xml}");
        assert_eq!(container_id(&instance), container_id(&instance));
        assert_ne!(container_id(&instance), super::super::vm_id(&instance));
    }

    #[test]
    fn health_reports_for_this_goal_state_are_accepted() {
        let instance = instance();
        let body = report(&container_id(&instance), &role_instance_id(&instance), "NotReady");
        let parsed = health_report(body.as_bytes()).unwrap();
        assert_eq!(parsed.state, "NotReady");
        assert_eq!(parsed.substatus.as_deref(), Some("ProvisioningFailed"));
        assert_eq!(parsed.description.as_deref(), Some("no <user>"));
        let post = |body: String| {
            respond(&instance, &GuestRequest::new(Method::POST, "/machine?comp=health").with_body(body)).status
        };
        assert_eq!(post(body), StatusCode::OK);
        assert_eq!(post(report("other", &role_instance_id(&instance), "Ready")), StatusCode::BAD_REQUEST);
        assert_eq!(post("<Health/>".into()), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn versions_and_unknown_paths() {
        let instance = instance();
        let versions = respond(&instance, &GuestRequest::new(Method::GET, "/?comp=versions"));
        assert_eq!(versions.status, StatusCode::OK);
        assert!(std::str::from_utf8(&versions.body).unwrap().contains("<Version>2012-11-30</Version>"));
        assert_eq!(
            respond(&instance, &GuestRequest::new(Method::GET, "/metadata/instance")).status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            respond(&instance, &GuestRequest::new(Method::GET, "/machine?comp=health")).status,
            StatusCode::NOT_FOUND
        );
    }
}
