//! `imds verify`: checks an EC2 identity document's `signature`, or a `pkcs7`/`rsa2048`
//! SignedData, or an RS256 identity token, against certificates (a PEM file, or those the
//! admin API publishes). Exit 0 when it verifies, 1 when it does not, 2 on local mistakes.

use clap::Args;
use http::Method;
use imds_sign::verify;

use super::common::{call, emit, Failure, Format, Global};
use super::out::{errln, outln};

/// `imds verify ...`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The identity document (the exact bytes served at dynamic/instance-identity/document).
    #[arg(long, value_name = "FILE")]
    document: Option<String>,
    /// Its `signature` (base64) to check against the document.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pkcs7", "jwt"])]
    signature: Option<String>,
    /// A `pkcs7` or `rsa2048` body (base64, with or without PEM armour); prints the signed
    /// document, which must equal --document when given.
    #[arg(long, value_name = "FILE", conflicts_with = "jwt")]
    pkcs7: Option<String>,
    /// An RS256 JWT (identity token); prints its claims.
    #[arg(long, value_name = "FILE")]
    jwt: Option<String>,
    /// Certificates (PEM); default: fetch them from the admin API.
    #[arg(long, value_name = "FILE")]
    certs: Option<String>,
}

fn read(path: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::usage(format!("cannot read {path}: {e}")))
}

fn text(path: &str) -> Result<String, Failure> {
    String::from_utf8(read(path)?).map_err(|_| Failure::usage(format!("{path} is not text")))
}

fn refuted(error: impl std::fmt::Display) -> Failure {
    Failure { message: format!("NOT verified: {error}"), code: 1 }
}

/// Runs the check.
pub async fn run(args: VerifyArgs, global: &Global) -> Result<(), Failure> {
    let pem = match &args.certs {
        Some(path) => text(path)?,
        None => call(&global.client()?, Method::GET, "/v1/signing/certificates", &[], String::new()).await?.text(),
    };
    let certificates = imds_sign::parse_certificates(&pem).map_err(|e| Failure::usage(e.to_string()))?;
    if let Some(signature) = &args.signature {
        let document = args.document.as_deref().ok_or_else(|| Failure::usage("--signature needs --document"))?;
        verify::signature(&certificates, &read(document)?, &text(signature)?).map_err(refuted)?;
        outln!("verified: the signature matches the document");
    } else if let Some(pkcs7) = &args.pkcs7 {
        let body: String =
            text(pkcs7)?.lines().filter(|line| !line.starts_with("-----")).collect::<Vec<_>>().join("\n");
        let signed = verify::pkcs7(&certificates, &body).map_err(refuted)?;
        if let Some(document) = &args.document {
            if read(document)? != signed {
                return Err(refuted("the signed document differs from --document"));
            }
        }
        errln!("verified: the PKCS#7 signature is good; the signed document follows");
        outln!("{}", String::from_utf8_lossy(&signed));
    } else if let Some(jwt) = &args.jwt {
        let claims = verify::jwt(&certificates, &text(jwt)?).map_err(refuted)?;
        errln!("verified: the token's signature is good; its claims follow");
        emit(&claims, global.format(Format::Json), None);
    } else {
        return Err(Failure::usage("give --signature (with --document), --pkcs7 or --jwt"));
    }
    Ok(())
}
