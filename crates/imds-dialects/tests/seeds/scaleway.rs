//! Scaleway, on a listener bound to it: `/conf`, `/user_data/…`, `/vendor_data/…`; user and
//! vendor data only for a privileged source port.

use http::Method;
use imds_dialects::{Dialect, GuestRequest, GuestResponse};
use imds_model::Instance;
use serde_json::{json, Value};

use super::{body, content_type, full, golden, parse, send_request, ED, RSA, USER_DATA};

fn scaleway(instance: &Instance, target: &str, port: u16) -> GuestResponse {
    send_request(instance, &GuestRequest::new(Method::GET, target).on_listener_of(Dialect::Scaleway).from_port(port))
}

#[test]
fn conf_as_json_and_as_shell_variables() {
    let json = scaleway(&full(), "/conf?format=json", 40_000);
    assert_eq!((json.status.as_u16(), content_type(&json)), (200, "application/json"));
    let doc: Value = serde_json::from_slice(&json.body).unwrap();
    golden("scaleway", "conf.json", &format!("{}\n", serde_json::to_string_pretty(&doc).unwrap()));
    assert_eq!(doc["ssh_public_keys"][0]["key"], ED);
    assert_eq!(doc["ssh_public_keys"][1]["key"], RSA);
    assert!(doc["ssh_public_keys"][0]["fingerprint"].as_str().unwrap().starts_with("SHA256:"));
    golden("scaleway", "conf.txt", body(&scaleway(&full(), "/conf", 40_000)));
    let minimal: Value =
        serde_json::from_slice(&scaleway(&parse(json!({"id": "m"})), "/conf?format=json", 1).body).unwrap();
    assert_eq!(minimal["ipv6"], Value::Null); // cloud-init reads the key: it must be there
}

#[test]
fn user_and_vendor_data_need_a_privileged_port() {
    let instance = full();
    let data = scaleway(&instance, "/user_data/cloud-init", 1023);
    assert_eq!((data.status.as_u16(), content_type(&data)), (200, "application/octet-stream"));
    assert_eq!(body(&data), USER_DATA);
    assert_eq!(body(&scaleway(&instance, "/vendor_data/cloud-init", 1)), "#cloud-config\npackages: [htop]\n");
    assert_eq!(body(&scaleway(&instance, "/user_data?format=json", 700)), r#"{"user_data":["cloud-init"]}"#);
    for port in [1024, 40_000] {
        for path in ["/user_data/cloud-init", "/vendor_data/cloud-init", "/user_data"] {
            assert_eq!(scaleway(&instance, path, port).status, 403, "{path} from {port}");
        }
    }
    // No port known (behind a proxy): refused too.
    let unported = GuestRequest::new(Method::GET, "/user_data/cloud-init").on_listener_of(Dialect::Scaleway);
    assert_eq!(send_request(&instance, &unported).status, 403);
    // None set: 404, which cloud-init takes as "none".
    let bare = parse(json!({"id": "bare"}));
    assert_eq!(scaleway(&bare, "/user_data/cloud-init", 5).status, 404);
    assert_eq!(scaleway(&bare, "/user_data?format=json", 5).body, r#"{"user_data":[]}"#);
    assert_eq!(scaleway(&instance, "/user_data/other", 5).status, 404);
}

#[test]
fn scaleway_is_never_chosen_by_path() {
    let response = send_request(&full(), &GuestRequest::new(Method::GET, "/conf?format=json"));
    assert_eq!(response.status, 404);
    assert!(body(&response).contains("404 - Not Found")); // EC2's page: the shared listener's
}
