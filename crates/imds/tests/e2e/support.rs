//! Starting the real binary and finding where it listens.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use imds_server::client::{Client, Endpoint};

pub(crate) const TOKEN: &str = "e2e-token";

pub(crate) fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_imds")
}

/// A running `imds serve`, killed (SIGKILL) when dropped.
pub(crate) struct Daemon {
    pub(crate) child: Child,
    pub(crate) guest: SocketAddr,
    pub(crate) admin: SocketAddr,
    pub(crate) stdout: Vec<String>,
    /// Every line the daemon wrote to stderr so far (also echoed to the test's stderr).
    pub(crate) stderr: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Starts `imds serve` with `args` in `cwd` and waits for its address lines.
    pub(crate) fn start(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut command = Command::new(binary());
        command.arg("serve").args(args).current_dir(cwd).stdout(Stdio::piped()).stderr(Stdio::piped());
        for var in [
            "IMDS_CONFIG",
            "IMDS_ADMIN_TOKEN",
            "IMDS_GUEST_LISTEN",
            "IMDS_ADMIN_LISTEN",
            "IMDS_ADMIN_SOCKET",
            "IMDS_STORE_PATH",
        ] {
            command.env_remove(var);
        }
        command.envs(env.iter().copied());
        let mut child = command.spawn().expect("imds starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr_lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("imds: {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        let (mut guest, mut admin) = (None, None);
        while guest.is_none() || admin.is_none() {
            let line = match lines_rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    panic!("imds exited or did not announce its addresses within 60 s (its stderr is above); stdout so far: {lines:#?}");
                }
            };
            if let Some(addr) = line.trim().strip_prefix("guest plane: http://") {
                guest.get_or_insert(addr.parse().expect("guest address"));
            }
            if let Some(rest) = line.trim().strip_prefix("admin API:   http://") {
                admin = Some(rest.split_whitespace().next().unwrap().parse().expect("admin address"));
            }
            lines.push(line);
        }
        // Keep draining so the child never blocks on a full pipe.
        std::thread::spawn(move || while lines_rx.recv().is_ok() {});
        Daemon { child, guest: guest.unwrap(), admin: admin.unwrap(), stdout: lines, stderr: stderr_lines }
    }

    /// A daemon on ephemeral loopback ports over the SQLite file `db`, with an admin token.
    pub(crate) fn with_db(dir: &Path, db: &Path) -> Daemon {
        Daemon::with_db_and_flags(dir, db, &[])
    }

    /// [`Daemon::with_db`] with extra `serve` flags.
    pub(crate) fn with_db_and_flags(dir: &Path, db: &Path, flags: &[&str]) -> Daemon {
        let config = dir.join("imds.toml");
        std::fs::write(
            &config,
            format!(
                "[guest]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\nsocket = \"\"\ntoken = \"{TOKEN}\"\n[store]\npath = \"{}\"\n",
                db.display()
            ),
        )
        .unwrap();
        let mut args = vec!["--config", config.to_str().unwrap()];
        args.extend_from_slice(flags);
        Daemon::start(dir, &args, &[])
    }

    pub(crate) fn admin_client(&self) -> Client {
        Client::new(Endpoint::Tcp(self.admin)).with_token(Some(TOKEN.into()))
    }

    pub(crate) fn guest_from(&self, source: &str) -> Client {
        Client::from_source(self.guest, source.parse().unwrap())
    }

    pub(crate) fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn temp_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}
