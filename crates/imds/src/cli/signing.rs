//! `imds signing keys|certs|jwks|rotate|import`: the identity signing keys through the admin
//! API. Certificates are what relying parties (Vault, `openssl`, `imds verify`) check against.

use std::process::ExitCode;

use clap::Subcommand;
use http::Method;

use super::instance::{call, client, finish, print_json, Failure, Target};

/// `imds signing ...`
#[derive(Debug, Subcommand)]
pub enum SigningCommand {
    /// List the published keys (active first).
    Keys {
        #[command(flatten)]
        target: Target,
    },
    /// Print every published certificate, PEM.
    Certs {
        #[command(flatten)]
        target: Target,
    },
    /// Print the public keys as a JWKS.
    Jwks {
        #[command(flatten)]
        target: Target,
    },
    /// Generate a new signing key; the previous one stays published.
    Rotate {
        #[command(flatten)]
        target: Target,
    },
    /// Make an operator-supplied RSA key (PEM, at least 2048 bits) the signing key.
    Import {
        /// The private key file (PKCS#8 or PKCS#1 PEM).
        #[arg(long, value_name = "FILE")]
        key: String,
        /// Its certificate (PEM); without one a self-signed certificate is made.
        #[arg(long, value_name = "FILE")]
        cert: Option<String>,
        #[command(flatten)]
        target: Target,
    },
}

/// Runs one command: exit 0 on success, 1 when the server refused, 2 on local mistakes.
pub async fn run(command: SigningCommand) -> ExitCode {
    finish(execute(command).await)
}

fn read(path: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure::local(format!("cannot read {path}: {e}")))
}

async fn execute(command: SigningCommand) -> Result<(), Failure> {
    match command {
        SigningCommand::Keys { target } => {
            print_json(&call(&client(&target), Method::GET, "/v1/signing/keys", &[], String::new()).await?.json());
        }
        SigningCommand::Certs { target } => {
            print!(
                "{}",
                call(&client(&target), Method::GET, "/v1/signing/certificates", &[], String::new()).await?.text()
            );
        }
        SigningCommand::Jwks { target } => {
            print_json(&call(&client(&target), Method::GET, "/v1/signing/jwks", &[], String::new()).await?.json());
        }
        SigningCommand::Rotate { target } => {
            let response = call(&client(&target), Method::POST, "/v1/signing/rotate", &[], String::new()).await?;
            eprintln!("rotated: new key {}", response.json()["keys"][0]["kid"].as_str().unwrap_or("?"));
        }
        SigningCommand::Import { key, cert, target } => {
            let mut body = serde_json::json!({ "private_key_pem": read(&key)? });
            if let Some(cert) = cert {
                body["certificate_pem"] = read(&cert)?.into();
            }
            let response = call(
                &client(&target),
                Method::PUT,
                "/v1/signing/key",
                &[("content-type", "application/json")],
                body.to_string(),
            )
            .await?;
            eprintln!("imported: key {} signs from now on", response.json()["keys"][0]["kid"].as_str().unwrap_or("?"));
        }
    }
    Ok(())
}
