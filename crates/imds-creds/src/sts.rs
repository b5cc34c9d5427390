//! STS `AssumeRole` over HTTP(S), signed with SigV4 by `aws-sigv4` (the SDK's signer alone,
//! not the SDK), sent with a small hyper client (rustls for `https`).
//!
//! The request is a form-encoded body (`form_urlencoded`); the answer is STS's XML, read into
//! typed structs by `quick-xml` (`AssumeRoleResponse` on success, `ErrorResponse` otherwise).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::secret::Secret;
use crate::source::{BaseCredentials, Credentials, FetchError, Source};
use imds_model::time::parse_rfc3339;

/// How long one `AssumeRole` call may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The region signed for when the role names none.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The HTTP client STS calls go through (shared; HTTPS via the system's roots).
#[derive(Clone)]
pub struct HttpClient(
    Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, Full<Bytes>>,
);

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

impl HttpClient {
    /// A client for `http` and `https` endpoints (ring as the TLS provider, the system's roots).
    pub fn new() -> Self {
        let provider = || std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let connector = match hyper_rustls::HttpsConnectorBuilder::new().with_provider_and_native_roots(provider()) {
            Ok(builder) => builder.https_or_http().enable_http1().build(),
            Err(error) => {
                tracing::warn!(%error, "no system root certificates; STS over https will fail");
                let config = rustls::ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .map(|builder| builder.with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth())
                    .unwrap_or_else(|_| {
                        rustls::ClientConfig::builder()
                            .with_root_certificates(rustls::RootCertStore::empty())
                            .with_no_client_auth()
                    });
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(config)
                    .https_or_http()
                    .enable_http1()
                    .build()
            }
        };
        Self(Client::builder(TokioExecutor::new()).build(connector))
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

/// `<AssumeRoleResponse>`: what a successful `AssumeRole` answers (unknown elements ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AssumeRoleResponse {
    assume_role_result: AssumeRoleResult,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AssumeRoleResult {
    credentials: StsCredentials,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
}

impl std::fmt::Debug for StsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StsCredentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// `<ErrorResponse><Error><Code/><Message/></Error></ErrorResponse>`: a refusal.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorResponse {
    #[serde(default)]
    error: StsError,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The `RoleSessionName` of instance `id`'s own session: STS allows 2 to 64 of
/// `[A-Za-z0-9_+=,.@-]`, so any other character becomes `-`, a longer id is cut at 64 and a
/// one-character id gets a `-` appended.
pub fn instance_session_name(id: &str) -> String {
    let mut name: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) { c } else { '-' }).take(64).collect();
    while name.len() < 2 {
        name.push('-');
    }
    name
}

/// The body of an `AssumeRole` request.
fn request_body(role_arn: &str, session: &str, duration_seconds: u32, external_id: Option<&str>) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", "AssumeRole")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", role_arn)
        .append_pair("RoleSessionName", session)
        .append_pair("DurationSeconds", &duration_seconds.to_string());
    if let Some(id) = external_id {
        form.append_pair("ExternalId", id);
    }
    form.finish()
}

/// Calls `AssumeRole` for `source` (an `sts` source) with `base`.
pub async fn assume_role(
    http: &HttpClient,
    role: &str,
    source: &Source,
    base: &BaseCredentials,
    now: u64,
) -> Result<Credentials, FetchError> {
    let Source::Sts { role_arn, session_name, endpoint, region, duration_seconds, external_id, .. } = source else {
        return Err(FetchError::BadAnswer("not an sts source".into()));
    };
    let region = region.as_deref().unwrap_or(DEFAULT_REGION);
    let endpoint = endpoint.clone().unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com/"));
    let session = session_name.clone().unwrap_or_else(|| format!("imds-{role}"));
    let body = request_body(role_arn, &session, duration_seconds.unwrap_or(3600), external_id.as_deref());
    let uri: http::Uri = endpoint.parse().map_err(|e| FetchError::request(format!("bad endpoint {endpoint:?}"), e))?;
    let host = uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
    let mut request = http::Request::builder()
        .method("POST")
        .uri(uri.clone())
        .header("host", host)
        .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
        .body(Full::new(Bytes::from(body.clone())))
        .map_err(|e| FetchError::request("building the request", e))?;

    let identity = aws_credential_types::Credentials::new(
        base.access_key_id.clone(),
        base.secret_access_key.expose().to_owned(),
        base.session_token.as_ref().map(|t| t.expose().to_owned()),
        None,
        "imds",
    )
    .into();
    let time = UNIX_EPOCH + Duration::from_secs(now);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(time.max(SystemTime::UNIX_EPOCH))
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| FetchError::request("signing", e))?
        .into();
    let headers = request.headers().iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
    let signable = SignableRequest::new("POST", uri.to_string(), headers, SignableBody::Bytes(body.as_bytes()))
        .map_err(|e| FetchError::request("signing", e))?;
    let (instructions, _) = sign(signable, &params).map_err(|e| FetchError::request("signing", e))?.into_parts();
    instructions.apply_to_request_http1x(&mut request);

    let response = tokio::time::timeout(TIMEOUT, http.0.request(request))
        .await
        .map_err(|_| FetchError::Unreachable(format!("no answer from {endpoint} within {}s", TIMEOUT.as_secs())))?
        .map_err(|e| FetchError::request(endpoint.clone(), e))?;
    let status = response.status();
    let bytes = tokio::time::timeout(TIMEOUT, response.into_body().collect())
        .await
        .map_err(|_| FetchError::Unreachable("STS answer timed out".into()))?
        .map_err(|e| FetchError::request(format!("reading the answer from {endpoint}"), e))?
        .to_bytes();
    let xml = String::from_utf8_lossy(&bytes);
    if !status.is_success() {
        let refusal = quick_xml::de::from_str::<ErrorResponse>(&xml).unwrap_or_default().error;
        return Err(FetchError::Refused {
            code: Some(refusal.code.trim().to_owned())
                .filter(|code| !code.is_empty())
                .unwrap_or_else(|| status.as_u16().to_string()),
            message: refusal.message.trim().to_owned(),
        });
    }
    credentials(&xml)
}

/// The credentials of a successful `AssumeRole` answer.
fn credentials(xml: &str) -> Result<Credentials, FetchError> {
    let answer: AssumeRoleResponse =
        quick_xml::de::from_str(xml).map_err(|e| FetchError::BadAnswer(format!("unexpected STS answer: {e}")))?;
    let StsCredentials { access_key_id, secret_access_key, session_token, expiration } =
        answer.assume_role_result.credentials;
    let expiration = expiration.trim();
    Ok(Credentials {
        access_key_id: access_key_id.trim().to_owned(),
        secret_access_key: Secret::new(secret_access_key.trim().to_owned()),
        session_token: Some(Secret::new(session_token.trim().to_owned())),
        expiration: Some(
            parse_rfc3339(expiration).ok_or_else(|| FetchError::BadAnswer(format!("bad Expiration {expiration}")))?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_xml() {
        let xml = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/app/imds-app</Arn></AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIA1</AccessKeyId>
      <SecretAccessKey>s3cr&amp;t</SecretAccessKey>
      <SessionToken>
        a&lt;b
      </SessionToken>
      <Expiration>2021-09-20T21:42:26Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#;
        let read = credentials(xml).unwrap();
        assert_eq!(read.access_key_id, "ASIA1");
        assert_eq!(read.secret_access_key.expose(), "s3cr&t");
        assert_eq!(read.session_token.as_ref().map(Secret::expose), Some("a<b"));
        assert_eq!(read.expiration, Some(1_632_174_146));
        let missing = "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>A</AccessKeyId></Credentials></AssumeRoleResult></AssumeRoleResponse>";
        assert!(matches!(credentials(missing), Err(FetchError::BadAnswer(_))));
        assert!(matches!(credentials("not xml"), Err(FetchError::BadAnswer(_))));
    }

    #[test]
    fn instance_session_names_fit_what_sts_accepts() {
        assert_eq!(instance_session_name("i-0123456789abcdef0"), "i-0123456789abcdef0");
        assert_eq!(instance_session_name("vm 7/ü"), "vm-7--");
        assert_eq!(instance_session_name("a"), "a-");
        assert_eq!(instance_session_name(&"x".repeat(80)).len(), 64);
        assert_eq!(instance_session_name("u+s=e,r.n@m_e-"), "u+s=e,r.n@m_e-");
    }

    #[test]
    fn refusals_carry_sts_code_and_message() {
        let xml = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>no</Message></Error><RequestId>r</RequestId></ErrorResponse>";
        let refusal = quick_xml::de::from_str::<ErrorResponse>(xml).unwrap().error;
        assert_eq!((refusal.code.as_str(), refusal.message.as_str()), ("AccessDenied", "no"));
    }

    fn sts_at(endpoint: &str) -> Source {
        Source::Sts {
            role_arn: "arn:aws:iam::1:role/app".into(),
            session_name: None,
            endpoint: Some(endpoint.into()),
            region: None,
            duration_seconds: None,
            external_id: None,
            session_per_instance: None,
        }
    }

    fn base() -> BaseCredentials {
        BaseCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("base-secret"),
            session_token: None,
        }
    }

    #[tokio::test]
    async fn an_unreachable_sts_keeps_the_connection_error_as_the_source() {
        use std::error::Error as _;
        // A port nothing listens on: the connection is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let endpoint = format!("http://127.0.0.1:{port}/");
        let error =
            assume_role(&HttpClient::new(), "app", &sts_at(&endpoint), &base(), 1_700_000_000).await.unwrap_err();
        let FetchError::Request { context, source } = &error else { panic!("not a request error: {error:?}") };
        assert_eq!(context, &endpoint);
        let cause = error.source().expect("the connection error is the source");
        assert_eq!(cause.to_string(), source.to_string());
        // The message still says what happened, with the cause's text.
        assert_eq!(error.to_string(), format!("cannot reach STS: {endpoint}: {cause}"));
        assert!(!error.to_string().contains("base-secret"));
        // Role states keep it: it clones, and clones compare equal.
        assert_eq!(error.clone(), error);

        let error = assume_role(&HttpClient::new(), "app", &sts_at("http://bad host/"), &base(), 1_700_000_000)
            .await
            .unwrap_err();
        let cause = error.source().expect("the URI error is the source");
        let invalid = "http://bad host/".parse::<http::Uri>().unwrap_err();
        assert_eq!(cause.to_string(), invalid.to_string());
        assert_eq!(error.to_string(), format!("cannot reach STS: bad endpoint \"http://bad host/\": {cause}"));
    }

    #[test]
    fn requests_are_form_encoded() {
        assert_eq!(
            request_body("arn:aws:iam::1:role/a b", "imds-app", 900, Some("x&y")),
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fa+b\
             &RoleSessionName=imds-app&DurationSeconds=900&ExternalId=x%26y"
        );
    }
}
