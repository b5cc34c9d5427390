//! `imds signing keys|certs|jwks|rotate|import`: the identity signing keys through the admin
//! API. Certificates are what relying parties (Vault, `openssl`, `imds verify`) check against.

use clap::Subcommand;
use http::Method;

use super::common::{call, emit, Columns, Failure, Format, Global};
use super::out::{errln, out};

/// `imds signing ...`
#[derive(Debug, Subcommand)]
pub enum SigningCommand {
    /// List the published keys (active first).
    Keys,
    /// Print every published certificate, PEM.
    Certs,
    /// Print the public keys as a JWKS.
    Jwks,
    /// Generate a new signing key; the previous one stays published.
    Rotate,
    /// Make an operator-supplied RSA key (PEM, at least 2048 bits) the signing key.
    Import {
        /// The private key file (PKCS#8 or PKCS#1 PEM).
        #[arg(long, value_name = "FILE")]
        key: String,
        /// Its certificate (PEM); without one a self-signed certificate is made.
        #[arg(long, value_name = "FILE")]
        cert: Option<String>,
    },
}

/// The columns of `signing keys`.
const KEY_COLUMNS: Columns<'static> = Columns { headings: &["KID", "ACTIVE"], pointers: &["/kid", "/active"] };

/// The columns of `signing jwks -o table`.
const JWK_COLUMNS: Columns<'static> =
    Columns { headings: &["KID", "KTY", "ALG", "USE"], pointers: &["/kid", "/kty", "/alg", "/use"] };

fn read(path: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("cannot read {path}: {e}")))
}

/// Runs one command.
pub async fn run(command: SigningCommand, global: &Global) -> Result<(), Failure> {
    let client = global.client()?;
    match command {
        SigningCommand::Keys => {
            let list = call(&client, Method::GET, "/v1/signing/keys", &[], String::new()).await?.json();
            let rows = list["keys"].as_array().map_or(&[][..], Vec::as_slice);
            emit(&list, global.format(Format::Table), Some((rows, KEY_COLUMNS)));
        }
        SigningCommand::Certs => {
            let pem = call(&client, Method::GET, "/v1/signing/certificates", &[], String::new()).await?.text();
            match global.format(Format::Table) {
                Format::Table => out!("{pem}"),
                other => emit(&serde_json::json!({ "certificates_pem": pem }), other, None),
            }
        }
        SigningCommand::Jwks => {
            let jwks = call(&client, Method::GET, "/v1/signing/jwks", &[], String::new()).await?.json();
            let rows = jwks["keys"].as_array().map_or(&[][..], Vec::as_slice);
            emit(&jwks, global.format(Format::Json), Some((rows, JWK_COLUMNS)));
        }
        SigningCommand::Rotate => {
            let response = call(&client, Method::POST, "/v1/signing/rotate", &[], String::new()).await?;
            errln!("rotated: new key {}", response.json()["keys"][0]["kid"].as_str().unwrap_or("?"));
        }
        SigningCommand::Import { key, cert } => {
            let mut body = serde_json::json!({ "private_key_pem": read(&key)? });
            if let Some(cert) = cert {
                body["certificate_pem"] = read(&cert)?.into();
            }
            let response = call(
                &client,
                Method::PUT,
                "/v1/signing/key",
                &[("content-type", "application/json")],
                body.to_string(),
            )
            .await?;
            errln!("imported: key {} signs from now on", response.json()["keys"][0]["kid"].as_str().unwrap_or("?"));
        }
    }
    Ok(())
}
