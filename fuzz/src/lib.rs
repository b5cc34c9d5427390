//! Fuzz targets for the parsers that read what guests and operators send, on stable Rust.
//!
//! Each [`Target`] is a function of arbitrary bytes that must not panic and checks the laws its
//! parser promises (a parsed record re-parses to itself, a merge patch is idempotent, a minted
//! token verifies). Inputs come from proptest ([`inputs`]): corpus entries (`fuzz/corpus/<target>/`,
//! committed) with random edits, random bytes, and random JSON documents. `tests/corpus.rs`
//! runs every corpus entry as a normal test; `tests/fuzz.rs` runs each target for
//! `IMDS_FUZZ_SECONDS` (default 2), shrinking and reporting any input that fails.

use std::path::PathBuf;

use imds_dialects::token::TokenKey;
use imds_dialects::{Context, GuestRequest, Subject};
use imds_model::{Instance, Limits};
use proptest::prelude::*;
use serde_json::{json, Value};

/// A fuzz target: a name (its corpus directory) and the function it drives.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The corpus directory under `fuzz/corpus/`.
    pub name: &'static str,
    /// Must not panic, whatever the bytes.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target { name: "instance_parse", run: instance_parse },
    Target { name: "merge_patch", run: merge_patch },
    Target { name: "mmds_pointer", run: mmds_pointer },
    Target { name: "session_token", run: session_token },
    Target { name: "gce_query", run: gce_query },
    Target { name: "azure_query", run: azure_query },
    Target { name: "import_line", run: import_line },
    Target { name: "bound_listener", run: bound_listener },
];

/// The directory of a target's committed corpus.
pub fn corpus_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus").join(name)
}

/// The committed corpus of a target, every file's bytes (sorted by name).
pub fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let mut entries: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir(name))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|entry| {
                    let bytes = std::fs::read(entry.path()).ok()?;
                    Some((entry.file_name().to_string_lossy().into_owned(), bytes))
                })
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    entries
}

/// Inputs for a target: its corpus entries with random edits (most), random bytes, and random
/// JSON documents.
pub fn inputs(corpus: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let seeds = if corpus.is_empty() { vec![Vec::new()] } else { corpus };
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..5), 0..6);
    let mutated = (prop::sample::select(seeds), edits).prop_map(|(mut input, edits)| {
        for (at, byte, kind) in edits {
            let at = if input.is_empty() { 0 } else { at.index(input.len()) };
            match kind {
                0 if !input.is_empty() => input[at] = byte,
                1 => input.insert(at, byte),
                2 if !input.is_empty() => {
                    input.remove(at);
                }
                // JSON's structural bytes, where a parser's corner cases are.
                3 => {
                    let token: &[u8] =
                        [&b"{"[..], b"}", b"[", b"]", b"\"", b":", b",", b"null", b"\\u0000", b"%", b"/"]
                            [usize::from(byte) % 11];
                    input.splice(at..at, token.iter().copied());
                }
                _ => {
                    let end = (at + usize::from(byte % 16)).min(input.len());
                    let copy = input[at..end].to_vec();
                    input.splice(at..at, copy);
                }
            }
        }
        input
    });
    prop_oneof![
        6 => mutated,
        1 => prop::collection::vec(any::<u8>(), 0..256),
        2 => json_value().prop_map(|value| value.to_string().into_bytes()),
    ]
}

/// Random JSON documents, nested up to a few levels, with the record's key names likely.
pub fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "id",
            "ipv4",
            "ipv6",
            "mac",
            "hostname",
            "tags",
            "imds",
            "tokens",
            "hop_limit",
            "endpoint",
            "user_data",
            "base64",
            "network",
            "interfaces",
            "dialects",
            "enabled",
            "gce",
            "azure",
            "ssh_keys",
            "created_at",
            "iam_role",
            "node",
            "mmds",
            "",
        ])
        .prop_map(str::to_owned),
        "[a-z_/~.]{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(vec!["i-1", "127.0.0.1", "02:00:00:00:00:01", "on", "required", "2026-01-01T00:00:00Z"])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// `Instance::parse` of a JSON document: a parsed record's canonical form parses to itself.
pub fn instance_parse(data: &[u8]) {
    let Ok(doc) = serde_json::from_slice::<Value>(data) else { return };
    let limits = Limits::default();
    if let Ok(instance) = Instance::parse(&doc, &limits) {
        let again = Instance::parse(&instance.to_json(), &limits).expect("a parsed record's canonical form parses");
        assert_eq!(again.to_json(), instance.to_json(), "parsing is not a fixed point");
        let _ = Instance::from_bytes(&instance.to_bytes()).expect("canonical bytes read back");
        let _ = imds_dialects::check_overrides(&instance);
    }
}

/// RFC 7396 merge patch of `[target, patch]`: applying a patch twice is applying it once, and
/// the result has no `null` member the patch put there.
pub fn merge_patch(data: &[u8]) {
    let Ok(Value::Array(pair)) = serde_json::from_slice::<Value>(data) else { return };
    let [target, patch] = <[Value; 2]>::try_from(pair).unwrap_or([Value::Null, Value::Null]);
    let mut once = target;
    imds_model::merge_patch(&mut once, &patch);
    let mut twice = once.clone();
    imds_model::merge_patch(&mut twice, &patch);
    assert_eq!(once, twice, "a merge patch is idempotent");
}

/// MMDS paths: Firecracker's path cleaning and JSON-pointer resolution never panic, and
/// escaping a key round-trips.
pub fn mmds_pointer(data: &[u8]) {
    use imds_dialects::mmds::pointer;
    let raw = text(data);
    let document = json!({"latest": {"meta-data": {"a/b": 1, "m~n": [true, {"": null}]}}, "": {"x": "y"}});
    let cleaned = pointer::for_get(&raw);
    let _ = pointer::resolve(&document, &cleaned);
    let _ = pointer::collapse(&raw);
    assert_eq!(pointer::unescape(&pointer::escape(&raw)), raw, "escape then unescape is the identity");
    // Through the whole MMDS pipeline too.
    let instance = Instance::parse(&json!({"id": "i-fuzz"}), &Limits::default()).expect("fixture");
    let mmds = imds_model::Mmds { data: Some(document), ..Default::default() };
    let state = imds_model::GuestState::default();
    let subject = Subject { mmds: Some(&mmds), state: &state, ..Subject::new(&instance) };
    let key = TokenKey::from_bytes([7; 32]);
    let target = if raw.starts_with('/') { raw } else { format!("/{raw}") };
    if let Ok(request) = std::panic::catch_unwind(|| GuestRequest::new(http::Method::GET, &target)) {
        let _ = imds_dialects::route(&subject, &request, &Context::new(&key, 1_800_000_000));
    }
}

/// Session tokens: verifying any text never panics and accepts only what was minted for this
/// instance; a minted token verifies.
pub fn session_token(data: &[u8]) {
    let key = TokenKey::from_bytes([7; 32]);
    let now = 1_800_000_000;
    let candidate = text(data);
    if let Ok(left) = key.verify(&candidate, "i-fuzz", now) {
        assert!(left >= 1, "an accepted token has time left");
        assert!(key.verify(&candidate, "i-other", now).is_err(), "a token is valid for one instance only");
    }
    let ttl = u64::from(data.first().copied().unwrap_or(1)).max(1);
    let nonce = data.iter().fold(0u64, |acc, b| acc.rotate_left(8) ^ u64::from(*b));
    if let Ok(minted) = key.mint("i-fuzz", now, ttl, nonce) {
        assert!(key.verify(&minted, "i-fuzz", now).is_ok(), "a minted token verifies");
    }
}

fn dialect_request(target: String, header: (&'static str, &'static str)) {
    let instance = Instance::parse(
        &json!({"id": "i-fuzz", "hostname": "fuzz", "ipv4": ["127.0.0.1"], "tags": {"a": "b"}, "zone": "z1-a"}),
        &Limits::default(),
    )
    .expect("fixture");
    let key = TokenKey::from_bytes([7; 32]);
    let Ok(mut request) = std::panic::catch_unwind(|| GuestRequest::new(http::Method::GET, &target)) else { return };
    request.headers.insert(header.0, http::HeaderValue::from_static(header.1));
    let response = imds_dialects::route(&Subject::new(&instance), &request, &Context::new(&key, 1_800_000_000));
    assert!(response.status.as_u16() >= 200, "{target}: {}", response.status);
}

/// GCE's query parameters (`recursive`, `alt`, `wait_for_change`, `timeout_sec`, ...) on its paths.
pub fn gce_query(data: &[u8]) {
    let query = text(data);
    for path in ["/computeMetadata/v1/instance/", "/computeMetadata/v1/instance/hostname", "/computeMetadata/v1/"] {
        dialect_request(format!("{path}?{query}"), ("metadata-flavor", "Google"));
    }
}

/// Azure's query parameters (`api-version`, `format`, ...) on its paths.
pub fn azure_query(data: &[u8]) {
    let query = text(data);
    for path in ["/metadata/instance", "/metadata/instance/compute/tagsList", "/metadata/versions"] {
        dialect_request(format!("{path}?{query}"), ("metadata", "true"));
    }
}

/// Any target on a listener bound to each dialect (`[guest.dialect_listen]`), with the headers
/// the bound dialects read: never a panic, and a caller with no container token never gets the
/// role's secret, nor does an unknown caller get anything of the instance.
pub fn bound_listener(data: &[u8]) {
    use imds_dialects::credentials::{CredentialState, IssuedCredentials, RoleCredentials};
    #[derive(Debug)]
    struct Role;
    impl RoleCredentials for Role {
        fn credentials(&self, _role: &str, now: u64) -> Option<CredentialState> {
            Some(CredentialState::Ready(IssuedCredentials {
                access_key_id: "ASIAFUZZ".into(),
                secret_access_key: "FUZZ-SECRET".into(),
                token: "FUZZ-TOKEN".into(),
                expiration: now + 3600,
                last_updated: now,
            }))
        }
    }
    let text = text(data);
    let target = if text.starts_with('/') { text } else { format!("/{text}") };
    let instance = Instance::parse(
        &json!({"id": "i-fuzz", "ipv4": ["127.0.0.1"], "iam_role": "app", "user_data": "FUZZ-USER-DATA"}),
        &Limits::default(),
    )
    .expect("fixture");
    let key = TokenKey::from_bytes([7; 32]);
    let mut context = Context::new(&key, 1_800_000_000);
    context.credentials = &Role;
    for dialect in imds_dialects::Dialect::ALL.into_iter().filter(|d| *d != imds_dialects::Dialect::Mmds) {
        let Ok(request) = std::panic::catch_unwind(|| GuestRequest::new(http::Method::GET, &target)) else { return };
        let mut request = request.on_listener_of(dialect);
        for (name, value) in [("authorization", "Bearer Oracle"), ("x-aliyun-ecs-metadata-token", "forged")] {
            request.headers.insert(name, http::HeaderValue::from_static(value));
        }
        let response = imds_dialects::route(&Subject::new(&instance), &request, &context);
        assert!(response.status.as_u16() >= 200, "{target}: {}", response.status);
        if dialect == imds_dialects::Dialect::Container {
            assert!(
                !String::from_utf8_lossy(&response.body).contains("FUZZ-SECRET"),
                "{target}: a secret without a token"
            );
        }
        let refused =
            imds_dialects::unknown_caller("192.0.2.9".parse().expect("an address"), &request, &Default::default());
        let body = String::from_utf8_lossy(&refused.body);
        assert!(!body.contains("FUZZ") && !body.contains("i-fuzz"), "{target}: an unknown caller sees {body}");
    }
}

/// One line of a bulk import, as `POST /v1/instances` reads it: strict JSON, then the record.
pub fn import_line(data: &[u8]) {
    let Ok(doc) = imds_server::admin::body::parse_json(data) else { return };
    assert_eq!(
        Some(&doc),
        serde_json::from_slice::<Value>(data).ok().as_ref(),
        "strict JSON reads what serde_json reads when no key repeats"
    );
    if let Ok(instance) = Instance::parse(&doc, &Limits::default()) {
        let _ = imds_dialects::check_overrides(&instance);
    }
}
