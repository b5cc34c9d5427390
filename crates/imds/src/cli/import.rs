//! `imds instance import FILE`: bulk import through `POST /v1/instances`.
//!
//! Reads NDJSON (one instance document per line, blank lines ignored) or, when the input's
//! first non-blank character is `[`, a JSON array of documents, and sends requests of at most
//! `--batch` instances. NDJSON lines go out verbatim with the blank lines between them, so the
//! server's `line N` in an error is line `start + N - 1` of the file; the message says so.
//! Each request is all or nothing; requests already answered stay written when a later one fails,
//! and the summary printed then says how many.

use std::io::{BufRead, BufReader, Read};

use http::{Method, StatusCode};
use imds_server::client::Client;

use super::common::{describe, unreachable_hint, Failure, EXIT_ERROR};
use super::out::outln;

/// Totals over every request sent.
#[derive(Debug, Default)]
struct Totals {
    created: u64,
    replaced: u64,
}

/// One request's body and where it came from.
struct Request {
    body: String,
    /// How many instances it holds.
    count: usize,
    /// Where its first line is in the input, for error messages.
    origin: String,
}

/// Reads `file` (`-`: standard input) and imports it in requests of `batch` instances.
pub(crate) async fn run(client: &Client, file: &str, batch: usize, create_only: bool) -> Result<(), Failure> {
    let input: Box<dyn Read> = if file == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(file).map_err(|error| Failure::usage(format!("cannot read {file}: {error}")))?)
    };
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let array =
        starts_with_bracket(&mut reader).map_err(|error| Failure::usage(format!("cannot read {file}: {error}")))?;
    let mut totals = Totals::default();
    if array {
        let mut text = String::new();
        reader.read_to_string(&mut text).map_err(|error| Failure::usage(format!("cannot read {file}: {error}")))?;
        let docs: Vec<serde_json::Value> = serde_json::from_str(&text)
            .map_err(|error| Failure::usage(format!("{file} is not a JSON array of instances: {error}")))?;
        for (at, chunk) in docs.chunks(batch).enumerate() {
            let body: String = chunk.iter().map(|doc| format!("{doc}\n")).collect();
            let first = at * batch;
            let origin =
                format!("array items {}..{} of {file} (line N = item {first} + N - 1)", first, first + chunk.len() - 1);
            send(client, Request { body, count: chunk.len(), origin }, create_only, &mut totals).await?;
        }
    } else {
        let mut line_number = 0usize;
        let mut pending = Request { body: String::new(), count: 0, origin: String::new() };
        let mut line = String::new();
        loop {
            line.clear();
            let read = reader
                .read_line(&mut line)
                .map_err(|error| Failure::usage(format!("cannot read {file} at line {}: {error}", line_number + 1)))?;
            if read == 0 {
                break;
            }
            line_number += 1;
            let blank = line.trim().is_empty();
            if pending.count == 0 {
                if blank {
                    continue;
                }
                pending.origin =
                    format!("lines from {line_number} of {file} (the server's line N is line {line_number} + N - 1)");
            }
            pending.body.push_str(line.trim_end_matches(['\n', '\r']));
            pending.body.push('\n');
            if !blank {
                pending.count += 1;
            }
            if pending.count == batch {
                let full =
                    std::mem::replace(&mut pending, Request { body: String::new(), count: 0, origin: String::new() });
                send(client, full, create_only, &mut totals).await?;
            }
        }
        if pending.count > 0 {
            send(client, pending, create_only, &mut totals).await?;
        }
    }
    outln!("created {}, replaced {}", totals.created, totals.replaced);
    Ok(())
}

/// Whether the first non-blank byte is `[` (a JSON array), leaving it unread.
fn starts_with_bracket(reader: &mut impl BufRead) -> std::io::Result<bool> {
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(false);
        }
        match buffer.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(at) => return Ok(buffer[at] == b'['),
            None => {
                let len = buffer.len();
                reader.consume(len);
            }
        }
    }
}

/// Sends one request and adds its counts, or fails saying what was already imported.
async fn send(client: &Client, request: Request, create_only: bool, totals: &mut Totals) -> Result<(), Failure> {
    let mut headers = vec![("content-type", "application/x-ndjson")];
    if create_only {
        headers.push(("if-none-match", "*"));
    }
    let response = client
        .send(Method::POST, "/v1/instances", &headers, request.body)
        .await
        .map_err(|error| unreachable_hint(client, error))?;
    if response.status.is_success() {
        let body = response.json();
        totals.created += body["created"].as_u64().unwrap_or(0);
        totals.replaced += body["replaced"].as_u64().unwrap_or(0);
        return Ok(());
    }
    let hint = match response.status {
        StatusCode::UNAUTHORIZED => "give the server's admin token: --token-file FILE, or IMDS_ADMIN_TOKEN",
        StatusCode::BAD_REQUEST => "fix that line of the input and run the import again (already imported instances are replaced)",
        StatusCode::CONFLICT => {
            "an address is claimed twice, or held by an instance outside the import: fix the input or remove the other instance first"
        }
        StatusCode::PRECONDITION_FAILED => "an instance already exists: drop --create-only to replace existing instances",
        StatusCode::PAYLOAD_TOO_LARGE => "send fewer instances per request with a smaller --batch",
        StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
            "this server has no bulk import: upgrade it, or use `imds instance put` per instance"
        }
        _ => "run the import again once the server is healthy (already imported instances are replaced)",
    };
    let committed = response.json()["error"]["committed"].as_u64().unwrap_or(0);
    Err(Failure {
        message: format!(
            "import of {} ({} instances) refused: {}\n  before it: created {}, replaced {}{} (those stay imported)\n  hint: {hint}",
            request.origin,
            request.count,
            describe(&response),
            totals.created,
            totals.replaced,
            if committed > 0 { format!("; of this request {committed} were written") } else { String::new() },
        ),
        // A 404 here is a server without bulk import, not a missing instance.
        code: if response.status == StatusCode::NOT_FOUND { EXIT_ERROR } else { Failure::code_for(response.status) },
    })
}
