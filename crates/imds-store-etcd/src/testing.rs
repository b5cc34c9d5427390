//! Real etcd servers for tests (feature `test-util`).
//!
//! Owns [`EtcdCluster`]: one or more `etcd` processes (Debian's `etcd-server`, `/usr/bin/etcd`
//! or `$IMDS_TEST_ETCD`) on free loopback ports with data directories in a temporary directory.
//! Members can be killed with SIGKILL and restarted on the same data directory. Every process is
//! killed by its PID when the cluster is dropped; nothing outlives the test. A missing binary
//! fails loudly, naming the package to install. [`EtcdCluster::start_tls`] serves clients over
//! TLS with client-certificate authentication, on certificates it makes with the `openssl` CLI.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions};

use crate::{EtcdOptions, EtcdTls};

/// How long a member may take to answer after (re)starting.
const START_WAIT: Duration = Duration::from_secs(30);

/// One member's fixed settings.
#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

/// A running etcd cluster on loopback.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    dir: tempfile::TempDir,
    initial_cluster: String,
    /// With TLS: the certificates under `dir`.
    tls: Option<TlsFiles>,
}

/// The PEM files of a TLS cluster: a CA, the members' certificate, a client's certificate.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA that signed both certificates.
    pub ca: PathBuf,
    /// The members' certificate (for `127.0.0.1`) and key.
    pub server_cert: PathBuf,
    /// The members' key.
    pub server_key: PathBuf,
    /// A client certificate the members accept.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
}

/// Runs `openssl` with `args` in `dir`, failing loudly when it is missing or fails.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl not found: the TLS tests make their certificates with it (apt-get install openssl)");
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// Makes a CA named `name` and, signed by it, a server certificate for 127.0.0.1 and a client
/// certificate, as P-256 keys, under `dir` (files prefixed with `name`).
pub fn make_certificates(dir: &std::path::Path, name: &str) -> TlsFiles {
    let file = |what: &str| format!("{name}-{what}");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-days", "2", "-subj"]);
    let ca_subject = format!("/CN={name} test CA");
    let (ca_key, ca_pem) = (file("ca.key"), file("ca.pem"));
    ca.extend([ca_subject.as_str(), "-keyout", &ca_key, "-out", &ca_pem]);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(dir, &ca);
    for (who, ext) in [
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "subjectAltName=DNS:imds-client\nextendedKeyUsage=clientAuth\n"),
    ] {
        let (key, csr, pem, extfile) = (
            file(&format!("{who}.key")),
            file(&format!("{who}.csr")),
            file(&format!("{who}.pem")),
            file(&format!("{who}.ext")),
        );
        std::fs::write(dir.join(&extfile), ext).expect("write an openssl extension file");
        let mut req = vec!["req"];
        req.extend(ec);
        let subject = format!("/CN=imds-test-{who}");
        req.extend(["-subj", subject.as_str(), "-keyout", &key, "-out", &csr]);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &pem,
                "-extfile",
                &extfile,
            ],
        );
    }
    TlsFiles {
        ca: dir.join(ca_pem),
        server_cert: dir.join(file("server.pem")),
        server_key: dir.join(file("server.key")),
        client_cert: dir.join(file("client.pem")),
        client_key: dir.join(file("client.key")),
    }
}

/// The etcd binary to run.
fn etcd_binary() -> PathBuf {
    let path = std::env::var_os("IMDS_TEST_ETCD").map_or_else(|| PathBuf::from("/usr/bin/etcd"), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found: these tests need a real etcd (apt-get install etcd-server, or set IMDS_TEST_ETCD)",
        path.display()
    );
    path
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("a bound address").port()
}

impl EtcdCluster {
    /// Starts a one-member cluster and waits until it serves.
    pub async fn single() -> Self {
        Self::start(1).await
    }

    /// Starts `size` members and waits until all of them serve.
    pub async fn start(size: usize) -> Self {
        Self::launch(size, false).await
    }

    /// Starts `size` members serving clients over TLS only, requiring a client certificate
    /// signed by the cluster's CA ([`EtcdCluster::tls_files`]).
    pub async fn start_tls(size: usize) -> Self {
        Self::launch(size, true).await
    }

    async fn launch(size: usize, tls: bool) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory for etcd");
        let tls = tls.then(|| make_certificates(dir.path(), "cluster"));
        let members: Vec<Member> = (0..size)
            .map(|i| Member { name: format!("m{i}"), client_port: free_port(), peer_port: free_port(), child: None })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Self { members, dir, initial_cluster, tls };
        for i in 0..size {
            cluster.spawn(i);
        }
        for i in 0..size {
            cluster.wait_serving(i).await;
        }
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let member = &self.members[i];
        let client_url = self.endpoint(i);
        let peer_url = format!("http://127.0.0.1:{}", member.peer_port);
        let data_dir = self.dir.path().join(&member.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", member.name)))
            .expect("an etcd log file");
        let mut command = Command::new(etcd_binary());
        if let Some(tls) = &self.tls {
            command.arg("--cert-file").arg(&tls.server_cert).arg("--key-file").arg(&tls.server_key);
            command.arg("--trusted-ca-file").arg(&tls.ca).arg("--client-cert-auth");
        }
        let child = command
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &self.initial_cluster, "--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "imds-test"])
            // Fast elections on loopback: tests kill leaders.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.members[i].child = Some(child);
    }

    /// Waits until member `i` answers a linearizable read.
    pub async fn wait_serving(&self, i: usize) {
        let endpoint = self.endpoint(i);
        let deadline = tokio::time::Instant::now() + START_WAIT;
        loop {
            let ready = async {
                let mut options = ConnectOptions::new().with_connect_timeout(Duration::from_millis(500));
                if let Some(tls) = &self.options().tls {
                    options = options.with_tls(tls.options().ok()?);
                }
                let mut client = Client::connect([&endpoint], Some(options)).await.ok()?;
                client.get("/", Some(GetOptions::new().with_count_only())).await.ok()
            };
            if tokio::time::timeout(Duration::from_secs(2), ready).await.ok().flatten().is_some() {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "etcd member {i} did not serve within {START_WAIT:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many members the cluster has.
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// The client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.members[i].client_port)
    }

    /// `etcd://…` (`etcds://…` with TLS) naming every member, with `prefix`.
    pub fn url(&self, prefix: &str) -> String {
        let hosts: Vec<String> = self.members.iter().map(|m| format!("127.0.0.1:{}", m.client_port)).collect();
        let scheme = if self.tls.is_some() { "etcds" } else { "etcd" };
        format!("{scheme}://{}{prefix}", hosts.join(","))
    }

    /// The certificates of a TLS cluster.
    pub fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// Store options naming every member, with fast progress for tests (and, with TLS, the
    /// cluster's CA and the accepted client certificate).
    pub fn options(&self) -> EtcdOptions {
        EtcdOptions {
            endpoints: (0..self.size()).map(|i| self.endpoint(i)).collect(),
            progress_interval: Duration::from_millis(200),
            tls: self.tls.as_ref().map(|tls| EtcdTls {
                ca: Some(tls.ca.clone()),
                cert: Some(tls.client_cert.clone()),
                key: Some(tls.client_key.clone()),
            }),
            ..EtcdOptions::default()
        }
    }

    /// The process id of member `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    /// Kills member `i` with SIGKILL and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restarts member `i` on its data directory and waits until it serves.
    pub async fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_serving(i).await;
    }

    /// Starts member `i` again without waiting (for a whole cluster coming back).
    pub fn respawn(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }

    /// The index of the current leader, asking each live member.
    pub async fn leader(&self) -> Option<usize> {
        for (i, member) in self.members.iter().enumerate() {
            if member.child.is_none() {
                continue;
            }
            let mut options = ConnectOptions::new();
            if let Some(tls) = &self.options().tls {
                let Ok(tls) = tls.options() else { continue };
                options = options.with_tls(tls);
            }
            let Ok(mut client) = Client::connect([self.endpoint(i)], Some(options)).await else { continue };
            let Ok(status) = client.status().await else { continue };
            if status.header().is_some_and(|h| h.member_id() == status.leader()) {
                return Some(i);
            }
        }
        None
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
