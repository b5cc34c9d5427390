//! The `process` source: runs a command (no shell) that prints `credential_process` JSON
//! (`{"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}`), the
//! bridge to Vault and other secret stores. The command is killed when it overruns its timeout.

use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;
use crate::source::{Credentials, FetchError};
use imds_model::time::parse_rfc3339;

/// The largest output read from the command.
const MAX_OUTPUT: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Output {
    version: u32,
    access_key_id: String,
    secret_access_key: Secret,
    #[serde(default)]
    session_token: Option<Secret>,
    #[serde(default)]
    expiration: Option<String>,
}

/// Runs `command` for at most `timeout` and reads its credentials.
pub async fn run(command: &[String], timeout: Duration) -> Result<Credentials, FetchError> {
    let (program, args) = command.split_first().ok_or_else(|| FetchError::Process("no command".into()))?;
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| FetchError::Process(format!("cannot start {program}: {e}")))?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| FetchError::Process(format!("{program} did not finish within {}s", timeout.as_secs())))?
        .map_err(|e| FetchError::Process(format!("{program}: {e}")))?;
    if !output.status.success() {
        // stderr is the operator's diagnostic; it is not expected to carry secrets, but keep it short.
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr: String = stderr.trim().chars().take(200).collect();
        return Err(FetchError::Process(format!("{program} exited with {}: {stderr}", output.status)));
    }
    if output.stdout.len() > MAX_OUTPUT {
        return Err(FetchError::Process(format!("{program} printed more than {MAX_OUTPUT} bytes")));
    }
    // The error of a failed parse is not shown: serde's messages may quote the input.
    let parsed: Output = serde_json::from_slice(&output.stdout).map_err(|e| {
        FetchError::Process(format!(
            "{program} did not print credential_process JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if parsed.version != 1 {
        return Err(FetchError::Process(format!("unsupported credential_process Version {}", parsed.version)));
    }
    let expiration = match parsed.expiration.as_deref() {
        None => None,
        Some(text) => Some(parse_rfc3339(text).ok_or_else(|| FetchError::Process(format!("bad Expiration {text:?}")))?),
    };
    Ok(Credentials {
        access_key_id: parsed.access_key_id,
        secret_access_key: parsed.secret_access_key,
        session_token: parsed.session_token,
        expiration,
    })
}
