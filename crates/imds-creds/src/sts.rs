//! STS `AssumeRole` over HTTP(S), signed with SigV4 by `aws-sigv4` (the SDK's signer alone,
//! not the SDK), sent with a small hyper client (rustls for `https`).
//!
//! The answer is STS's XML; the five values we need are read by tag name. A full XML parser
//! would add a dependency to read five leaf elements whose content is base64/ISO text.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

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

fn form_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The text of the first `<tag>…</tag>` in `xml`, with XML's five entities decoded.
fn element<'a>(xml: &'a str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    let raw: &'a str = &xml[start..end];
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&")
            .trim()
            .to_owned(),
    )
}

/// Calls `AssumeRole` for `source` (an `sts` source) with `base`.
pub async fn assume_role(
    http: &HttpClient,
    role: &str,
    source: &Source,
    base: &BaseCredentials,
    now: u64,
) -> Result<Credentials, FetchError> {
    let Source::Sts { role_arn, session_name, endpoint, region, duration_seconds, external_id } = source else {
        return Err(FetchError::BadAnswer("not an sts source".into()));
    };
    let region = region.as_deref().unwrap_or(DEFAULT_REGION);
    let endpoint = endpoint.clone().unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com/"));
    let session = session_name.clone().unwrap_or_else(|| format!("imds-{role}"));
    let mut body = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName={}&DurationSeconds={}",
        form_escape(role_arn),
        form_escape(&session),
        duration_seconds.unwrap_or(3600)
    );
    if let Some(id) = external_id {
        body.push_str(&format!("&ExternalId={}", form_escape(id)));
    }
    let uri: http::Uri = endpoint.parse().map_err(|e| FetchError::Unreachable(format!("bad endpoint: {e}")))?;
    let host = uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
    let mut request = http::Request::builder()
        .method("POST")
        .uri(uri.clone())
        .header("host", host)
        .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
        .body(Full::new(Bytes::from(body.clone())))
        .map_err(|e| FetchError::Unreachable(e.to_string()))?;

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
        .map_err(|e| FetchError::Unreachable(format!("signing: {e}")))?
        .into();
    let headers = request.headers().iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
    let signable = SignableRequest::new("POST", uri.to_string(), headers, SignableBody::Bytes(body.as_bytes()))
        .map_err(|e| FetchError::Unreachable(format!("signing: {e}")))?;
    let (instructions, _) =
        sign(signable, &params).map_err(|e| FetchError::Unreachable(format!("signing: {e}")))?.into_parts();
    instructions.apply_to_request_http1x(&mut request);

    let response = tokio::time::timeout(TIMEOUT, http.0.request(request))
        .await
        .map_err(|_| FetchError::Unreachable(format!("no answer from {endpoint} within {}s", TIMEOUT.as_secs())))?
        .map_err(|e| FetchError::Unreachable(format!("{endpoint}: {e}")))?;
    let status = response.status();
    let bytes = tokio::time::timeout(TIMEOUT, response.into_body().collect())
        .await
        .map_err(|_| FetchError::Unreachable("STS answer timed out".into()))?
        .map_err(|e| FetchError::Unreachable(e.to_string()))?
        .to_bytes();
    let xml = String::from_utf8_lossy(&bytes);
    if !status.is_success() {
        return Err(FetchError::Refused {
            code: element(&xml, "Code").unwrap_or_else(|| status.as_u16().to_string()),
            message: element(&xml, "Message").unwrap_or_default(),
        });
    }
    let field =
        |tag: &str| element(&xml, tag).ok_or_else(|| FetchError::BadAnswer(format!("no <{tag}> in the STS answer")));
    let expiration = field("Expiration")?;
    Ok(Credentials {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: Secret::new(field("SecretAccessKey")?),
        session_token: Some(Secret::new(field("SessionToken")?)),
        expiration: Some(
            parse_rfc3339(&expiration).ok_or_else(|| FetchError::BadAnswer(format!("bad Expiration {expiration}")))?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_read_by_tag() {
        let xml =
            "<R><Credentials><AccessKeyId>ASIA1</AccessKeyId><SessionToken>a&amp;b</SessionToken></Credentials></R>";
        assert_eq!(element(xml, "AccessKeyId").as_deref(), Some("ASIA1"));
        assert_eq!(element(xml, "SessionToken").as_deref(), Some("a&b"));
        assert_eq!(element(xml, "Expiration"), None);
        assert_eq!(form_escape("arn:aws:iam::1:role/a b"), "arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fa%20b");
    }
}
