//! Running `nft`: a script as one atomic transaction (`nft -f -`), tables read back as JSON.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::NetError;

/// Runs `script` with `nft -f -`: every command of it applies, or none does.
pub async fn apply(script: &str) -> Result<(), NetError> {
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(NetError::NftUnavailable)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).await.map_err(NetError::NftUnavailable)?;
    }
    let output = child.wait_with_output().await.map_err(NetError::NftUnavailable)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(NetError::Nft(String::from_utf8_lossy(&output.stderr).trim().to_owned()))
    }
}

/// `nft -j list table FAMILY imds`, parsed; `None` when the table does not exist.
pub async fn list_table(family: &str) -> Result<Option<serde_json::Value>, NetError> {
    let output = tokio::process::Command::new("nft")
        .args(["-j", "list", "table", family, crate::rules::TABLE])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(NetError::NftUnavailable)?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("No such file or directory") {
            return Ok(None);
        }
        return Err(NetError::Nft(stderr.trim().to_owned()));
    }
    serde_json::from_slice(&output.stdout).map(Some).map_err(NetError::NftOutput)
}

/// `nft list table FAMILY imds` as text, `None` when absent.
pub async fn show_table(family: &str) -> Result<Option<String>, NetError> {
    let output = tokio::process::Command::new("nft")
        .args(["list", "table", family, crate::rules::TABLE])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(NetError::NftUnavailable)?;
    Ok(output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned()))
}

/// The rules of a listed table: `(chain, comment, packets counted)` for every rule with a counter.
pub fn counters(table: &serde_json::Value) -> Vec<(String, String, u64)> {
    let Some(items) = table.get("nftables").and_then(|v| v.as_array()) else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| item.get("rule"))
        .filter_map(|rule| {
            let chain = rule.get("chain")?.as_str()?.to_owned();
            let comment = rule.get("comment").and_then(|c| c.as_str()).unwrap_or_default().to_owned();
            let packets = rule
                .get("expr")?
                .as_array()?
                .iter()
                .find_map(|expr| expr.get("counter").and_then(|c| c.get("packets")).and_then(|p| p.as_u64()))?;
            Some((chain, comment, packets))
        })
        .collect()
}

/// The chains of a listed table, by name.
pub fn chains(table: &serde_json::Value) -> Vec<String> {
    let Some(items) = table.get("nftables").and_then(|v| v.as_array()) else { return Vec::new() };
    items.iter().filter_map(|item| item.get("chain")?.get("name")?.as_str().map(str::to_owned)).collect()
}

/// How many rules chain `name` of a listed table holds.
pub fn rule_count(table: &serde_json::Value, name: &str) -> usize {
    let Some(items) = table.get("nftables").and_then(|v| v.as_array()) else { return 0 };
    items
        .iter()
        .filter_map(|item| item.get("rule"))
        .filter(|rule| rule.get("chain").and_then(|c| c.as_str()) == Some(name))
        .count()
}
