//! What every admin-API subcommand shares: the global options (`--admin`, `--token`,
//! `--token-file`, `-o`), the exit codes, requests, and printing a result in the chosen format.
//!
//! A new subcommand takes `&Global`, calls [`Global::client`] and [`call`], and prints with
//! [`emit`]; its errors are [`Failure`]s, turned into the documented exit status by [`finish`]:
//! 0 ok, 1 error, 2 usage (also clap's own), 3 not found, 4 conflict (409, 412).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use http::{Method, StatusCode};
use imds_server::client::{Client, ClientError, Endpoint, Response};
use serde_json::Value;

use super::out::{errln, out, outln};

/// Exit status: the command did what was asked.
pub const EXIT_OK: u8 = 0;
/// Exit status: the server refused or could not be reached, or the operation failed.
pub const EXIT_ERROR: u8 = 1;
/// Exit status: a usage mistake (flags, an unreadable or invalid input file or configuration).
pub const EXIT_USAGE: u8 = 2;
/// Exit status: what was named does not exist (404).
pub const EXIT_NOT_FOUND: u8 = 3;
/// Exit status: a conflict (409: an address held by another instance; 412: a failed
/// `If-Match` or create-only condition).
pub const EXIT_CONFLICT: u8 = 4;

/// Where the admin API is found when neither `--admin` nor `IMDS_ADMIN` says.
pub const DEFAULT_SOCKET: &str = "/run/imds/admin.sock";

/// The options every subcommand takes, before or after its name.
#[derive(Debug, Args, Clone, Default)]
pub struct Global {
    /// Admin API: http://HOST:PORT or a Unix socket path [env: IMDS_ADMIN; default:
    /// /run/imds/admin.sock when it exists, else http://127.0.0.1:8998].
    #[arg(long, global = true, value_name = "URL|PATH", env = "IMDS_ADMIN", hide_env = true)]
    pub admin: Option<String>,
    /// The admin API's bearer token (visible to `ps`: prefer --token-file or IMDS_ADMIN_TOKEN).
    #[arg(long, global = true, value_name = "TOKEN", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// A file holding the bearer token [env: IMDS_ADMIN_TOKEN_FILE; the token itself:
    /// IMDS_ADMIN_TOKEN].
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Output format of a command's result: table, json or yaml (default: each command's own).
    #[arg(short = 'o', long = "output", global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
}

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people (`smbios`: the QEMU arguments).
    #[value(alias = "text", alias = "qemu")]
    Table,
    /// JSON, pretty-printed.
    Json,
    /// YAML (every string quoted).
    Yaml,
}

impl Global {
    /// The format asked with `-o`, else `default`.
    pub fn format(&self, default: Format) -> Format {
        self.output.unwrap_or(default)
    }

    /// A client for the admin API with the bearer token, if any: `--token`, `--token-file`,
    /// `IMDS_ADMIN_TOKEN`, `IMDS_ADMIN_TOKEN_FILE`, in that order.
    pub fn client(&self) -> Result<Client, Failure> {
        let endpoint = match self.admin.as_deref().filter(|a| !a.is_empty()) {
            Some(text) => parse_endpoint(text),
            None if Path::new(DEFAULT_SOCKET).exists() => Endpoint::Unix(PathBuf::from(DEFAULT_SOCKET)),
            None => Endpoint::Tcp(([127, 0, 0, 1], 8998).into()),
        };
        let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        let token = match (&self.token, &self.token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(file)) => Some(read_token(file)?),
            (None, None) => match env("IMDS_ADMIN_TOKEN") {
                Some(token) => Some(token),
                None => env("IMDS_ADMIN_TOKEN_FILE").map(|file| read_token(Path::new(&file))).transpose()?,
            },
        };
        Ok(Client::new(endpoint).with_token(token))
    }
}

fn read_token(file: &Path) -> Result<String, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|error| Failure::usage(format!("cannot read the token file {}: {error}", file.display())))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(Failure::usage(format!("the token file {} is empty", file.display())));
    }
    Ok(token.to_owned())
}

fn parse_endpoint(text: &str) -> Endpoint {
    let rest = text.strip_prefix("http://").unwrap_or(text);
    let rest = rest.trim_end_matches('/');
    match rest.parse() {
        Ok(addr) => Endpoint::Tcp(addr),
        Err(_) => match std::net::ToSocketAddrs::to_socket_addrs(rest).ok().and_then(|mut addrs| addrs.next()) {
            Some(addr) if text.starts_with("http://") => Endpoint::Tcp(addr),
            _ => Endpoint::Unix(PathBuf::from(text.strip_prefix("unix:").unwrap_or(text))),
        },
    }
}

/// Why a command failed: the message printed (after `imds: `) and the exit status.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong and, where known, what to do about it.
    pub message: String,
    /// One of the `EXIT_*` statuses.
    pub code: u8,
}

impl Failure {
    /// A usage mistake: exit 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: EXIT_USAGE }
    }

    /// A failure: exit 1.
    pub fn error(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: EXIT_ERROR }
    }

    /// The exit status for an admin API refusal with `status`.
    pub fn code_for(status: StatusCode) -> u8 {
        match status {
            StatusCode::NOT_FOUND => EXIT_NOT_FOUND,
            StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED => EXIT_CONFLICT,
            _ => EXIT_ERROR,
        }
    }
}

/// Exit 0 on success; otherwise prints the failure to stderr and exits with its code.
pub fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(Failure { message, code }) => {
            errln!("imds: {message}");
            ExitCode::from(code)
        }
    }
}

/// Sends one request; a non-2xx answer becomes a [`Failure`] with the server's message, each
/// field at fault, a hint, and the exit status of its class.
pub async fn call(
    client: &Client,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: String,
) -> Result<Response, Failure> {
    let response = client.send(method, path, headers, body).await.map_err(|error| unreachable_hint(client, error))?;
    if response.status.is_success() {
        return Ok(response);
    }
    Err(Failure { message: refusal(&response), code: Failure::code_for(response.status) })
}

/// The admin API could not be reached: say where it was looked for and how to point elsewhere.
pub fn unreachable_hint(client: &Client, error: ClientError) -> Failure {
    let place = match client.endpoint() {
        Endpoint::Tcp(addr) => format!("http://{addr}"),
        Endpoint::Unix(path) => path.display().to_string(),
    };
    Failure::error(format!(
        "{error}\n  is imds running? Start one with `imds serve --dev`, or point --admin / IMDS_ADMIN at the admin API (now {place})"
    ))
}

/// The server's error, with what to do about it.
fn refusal(response: &Response) -> String {
    let mut text = describe(response);
    let hint = match response.status {
        StatusCode::UNAUTHORIZED => Some("give the server's admin token: --token-file FILE, or IMDS_ADMIN_TOKEN"),
        StatusCode::NOT_FOUND => Some("`imds instance ls` lists the instances that exist"),
        StatusCode::CONFLICT => Some("remove the address from the other instance first, or pick another"),
        StatusCode::PRECONDITION_FAILED => Some("the instance changed meanwhile: get it again and retry"),
        _ => None,
    };
    if let Some(hint) = hint {
        text.push_str(&format!("\n  hint: {hint}"));
    }
    text
}

/// The server's error: status, message and each field at fault (admin JSON errors and
/// Firecracker's `fault_message`).
pub fn describe(response: &Response) -> String {
    let body = response.json();
    let error = body.get("error");
    let message = error
        .and_then(|e| e.get("message"))
        .or_else(|| body.get("fault_message"))
        .and_then(|m| m.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| response.text());
    let mut text =
        format!("{} {}: {message}", response.status.as_u16(), response.status.canonical_reason().unwrap_or(""));
    if let Some(details) = error.and_then(|e| e.get("details")).and_then(|d| d.as_array()) {
        for detail in details {
            let field = detail.get("field").and_then(|f| f.as_str()).unwrap_or("");
            let message = detail.get("message").and_then(|m| m.as_str()).unwrap_or("");
            text.push_str(&format!("\n  - {}: {message}", if field.is_empty() { "(record)" } else { field }));
        }
    }
    text
}

/// Percent-encodes what is not safe in a path segment or query value.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The input of a write: `-f FILE`, `-f -` for standard input.
#[derive(Debug, Args, Clone)]
pub struct Input {
    /// The JSON file, or - for standard input.
    #[arg(short = 'f', long = "file", value_name = "FILE|-")]
    pub file: String,
}

/// Reads `file` (`-`: standard input) as text.
pub fn read_text(file: &str) -> Result<String, Failure> {
    let mut text = String::new();
    let read = if file == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(file).map(|t| text = t)
    };
    read.map_err(|error| Failure::usage(format!("cannot read {file}: {error}")))?;
    Ok(text)
}

/// Reads `file` (`-`: standard input) as one JSON value.
pub fn read_json(file: &str) -> Result<Value, Failure> {
    serde_json::from_str(&read_text(file)?)
        .map_err(|error| Failure::usage(format!("{file} is not valid JSON: {error}")))
}

/// A table: column headings and, for each row, the JSON pointer (or key) of each cell.
#[derive(Debug, Clone, Copy)]
pub struct Columns<'a> {
    /// The headings, upper case.
    pub headings: &'a [&'a str],
    /// For each heading, the JSON pointer (`/status/valid`) of its cell in a row.
    pub pointers: &'a [&'a str],
}

/// Prints `value` as `format`: JSON, YAML, or a table. For `table`, `rows` are the items shown
/// with `columns` (each row of a list, or the one record); without columns, the value is shown
/// as `KEY VALUE` lines of its leaves (`network.interfaces.0.mac`).
pub fn emit(value: &Value, format: Format, rows: Option<(&[Value], Columns<'_>)>) {
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())),
        Format::Yaml => out!("{}", imds_dialects::yaml::to_yaml(value)),
        Format::Table => match rows {
            Some((rows, columns)) => print_table(rows, columns),
            None => print_leaves(value),
        },
    }
}

/// One cell: strings as they are, lists joined with commas, absent as `-`.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "-".to_owned(),
        Some(Value::Array(items)) => {
            items.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect::<Vec<_>>().join(",")
        }
        Some(other) => other.to_string(),
    }
}

/// Prints aligned columns, two spaces apart, headings first.
pub fn print_table(rows: &[Value], columns: Columns<'_>) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns.pointers.iter().map(|pointer| cell(row.pointer(pointer).or_else(|| row.get(pointer)))).collect()
        })
        .collect();
    let headings: Vec<String> = columns.headings.iter().map(|h| (*h).to_owned()).collect();
    print_grid(&headings, &cells);
}

/// Prints `headings` and `rows` as aligned columns.
pub fn print_grid(headings: &[String], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..headings.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).chain([headings[c].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell:<width$}", width = widths[c]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    outln!("{}", line(headings));
    for row in rows {
        outln!("{}", line(row));
    }
}

/// Prints every leaf of `value` as `KEY  VALUE`, keys as dotted paths.
fn print_leaves(value: &Value) {
    let mut rows = Vec::new();
    leaves(value, String::new(), &mut rows);
    print_grid(&["KEY".to_owned(), "VALUE".to_owned()], &rows);
}

fn leaves(value: &Value, path: String, rows: &mut Vec<Vec<String>>) {
    let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                leaves(child, join(key), rows);
            }
        }
        Value::Array(items) if !items.is_empty() && items.iter().any(|v| v.is_object() || v.is_array()) => {
            for (n, child) in items.iter().enumerate() {
                leaves(child, join(&n.to_string()), rows);
            }
        }
        Value::Object(_) => rows.push(vec![path, "{}".to_owned()]),
        leaf => rows.push(vec![if path.is_empty() { "-".to_owned() } else { path }, cell(Some(leaf))]),
    }
}
