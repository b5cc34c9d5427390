//! Fleet-wide credential refresh: one node per role calls the role's source, every node serves
//! what it published.
//!
//! With a deployment key ([`FleetKey`], from a file every node holds), the credential manager's
//! fetches go through [`FleetFetch`]. A fetch first reads the role's sealed credentials from
//! the store ([`records::fleet_credentials`]): sealed with AES-256-GCM under the key (a random 96-bit nonce per seal), the
//! role's name and stored bytes as associated data (a changed role never decrypts its old
//! credentials). Fresh ones (more than [`ROTATE_BEFORE`] and a margin left) are served as they
//! are. Otherwise the node tries to take the role's refresher lease ([`records::refresher`], a
//! [`Store::acquire`] lease: one holder at a time, and it lapses [`Config::lease_ttl`] after
//! the holder's last renewal as the store measures time, an etcd lease on etcd): the holder
//! checks the publication again, calls the real source while renewing the lease, commits the
//! sealed result unless it lost the lease meanwhile, and releases it; the others wait for the
//! publication, serving what they had (at least five minutes left) meanwhile. A holder that
//! dies stops renewing; its lease lapses within the TTL and the next node to look takes over.
//! Only refresher-eligible nodes ([`Config::refresher`]) take leases and call sources (their
//! inner fetch reads an `sts` role's base credentials from the store at fetch time); the others
//! never do, never read base credentials, and serve what the refreshers publish.
//! Static roles need no refresh and are read from their record as before.
//!
//! Who holds a lease never depends on the nodes' clocks (only freshness, read from credentials'
//! absolute expiry, does). Nothing here logs or shows a secret: [`FleetKey`]'s `Debug` is
//! redacted and errors name only keys and roles.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use imds_creds::{Credentials, Fetch, FetchError, Role, Secret, Source, ROTATE_BEFORE};
use imds_store::{Acquired, Expect, Op, Put, Store};
use serde::{Deserialize, Serialize};

use crate::records;

/// The deployment key that seals fleet-refreshed credentials in the store.
#[derive(Clone)]
pub struct FleetKey([u8; 32]);

impl fmt::Debug for FleetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FleetKey(<redacted>)")
    }
}

impl FleetKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads a key file: exactly 32 bytes, or those 32 bytes as 64 hex digits (whitespace
    /// around them ignored), e.g. `head -c 32 /dev/urandom > key` or `openssl rand -hex 32`.
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        if let Ok(raw) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(Self(raw));
        }
        let text = std::str::from_utf8(&bytes).map(str::trim).unwrap_or("");
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut raw = [0u8; 32];
            for (i, byte) in raw.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|err| err.to_string())?;
            }
            return Ok(Self(raw));
        }
        Err(format!("{} holds neither 32 bytes nor 64 hex digits", path.display()))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0))
    }
}

/// How fleet refresh runs on this node.
#[derive(Debug, Clone)]
pub struct Config {
    /// The deployment key.
    pub key: FleetKey,
    /// This node's name as a lease holder (its `--node`, or the host name).
    pub holder: String,
    /// How long a refresher's lease lasts without renewal; a dead refresher is replaced after
    /// at most this long. Default 15 s.
    pub lease_ttl: Duration,
    /// Whether this node may refresh roles for the fleet: take refresher leases, read base
    /// credentials and call the sources. A node that may not only serves what is published.
    pub refresher: bool,
}

/// The credentials as sealed in the store.
#[derive(Serialize, Deserialize)]
struct Plain {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
    #[serde(default)]
    expiration: Option<u64>,
}

/// What [`FleetFetch`] found of a lease.
enum Leased {
    /// This node holds it now.
    Mine,
    /// Another live holder has it.
    Theirs,
}

/// A [`Fetch`] that refreshes each role once per fleet (module docs).
#[derive(Debug)]
pub struct FleetFetch {
    inner: Arc<dyn Fetch>,
    store: Arc<dyn Store>,
    config: Config,
}

impl FleetFetch {
    /// Fleet refresh over `inner` (the real sources).
    pub fn new(inner: Arc<dyn Fetch>, store: Arc<dyn Store>, config: Config) -> Self {
        Self { inner, store, config }
    }

    /// The associated data binding sealed credentials to one version of one role.
    fn aad(name: &str, role: &Role) -> Vec<u8> {
        let mut aad = name.as_bytes().to_vec();
        aad.push(0);
        aad.extend(role.to_bytes());
        aad
    }

    fn seal(&self, name: &str, role: &Role, credentials: &Credentials) -> Result<Vec<u8>, FetchError> {
        let plain = Plain {
            access_key_id: credentials.access_key_id.clone(),
            secret_access_key: credentials.secret_access_key.expose().to_owned(),
            session_token: credentials.session_token.as_ref().map(|token| token.expose().to_owned()),
            expiration: credentials.expiration,
        };
        let json = serde_json::to_vec(&plain).map_err(|err| FetchError::BadAnswer(err.to_string()))?;
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|err| FetchError::Process(format!("no randomness: {err}")))?;
        let aad = Self::aad(name, role);
        let sealed = self
            .config
            .key
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &json, aad: &aad })
            .map_err(|_| FetchError::Process("sealing credentials failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(out)
    }

    /// The credentials sealed for this version of the role, if any (another key or role version
    /// reads as none).
    fn open(&self, name: &str, role: &Role, stored: &[u8]) -> Option<Credentials> {
        if stored.len() < 12 {
            return None;
        }
        let (nonce, sealed) = stored.split_at(12);
        let aad = Self::aad(name, role);
        let json =
            self.config.key.cipher().decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &aad }).ok()?;
        let plain: Plain = serde_json::from_slice(&json).ok()?;
        Some(Credentials {
            access_key_id: plain.access_key_id,
            secret_access_key: Secret::new(plain.secret_access_key),
            session_token: plain.session_token.map(Secret::new),
            expiration: plain.expiration,
        })
    }

    /// The published credentials of the role, if readable.
    async fn published(&self, name: &str, role: &Role) -> Result<Option<Credentials>, FetchError> {
        let record = self.store.get(&records::fleet_credentials(name)).await.map_err(unavailable)?;
        Ok(record.and_then(|record| self.open(name, role, &record.value)))
    }

    /// Takes or renews the role's refresher lease (the store's, for [`Config::lease_ttl`]), or
    /// says that another node holds it.
    async fn lease(&self, name: &str) -> Result<Leased, FetchError> {
        let key = records::refresher(name);
        match self.store.acquire(&key, &self.config.holder, self.config.lease_ttl).await.map_err(unavailable)? {
            Acquired::Held => Ok(Leased::Mine),
            Acquired::HeldBy(_) => Ok(Leased::Theirs),
        }
    }

    /// Gives up the role's refresher lease, so the next refresh anywhere takes it at once. A
    /// failure only delays that: the lease lapses after its TTL.
    async fn release(&self, name: &str) {
        if let Err(err) = self.store.release(&records::refresher(name), &self.config.holder).await {
            tracing::debug!(role = name, %err, "releasing the refresher lease failed; it lapses by itself");
        }
    }

    /// Calls the role's real source while renewing the refresher lease every third of its TTL
    /// (a source may take longer than the TTL), then whether the lease is still this node's.
    async fn fetch_holding(&self, name: &str, role: &Role, now: u64) -> (Result<Credentials, FetchError>, bool) {
        let mut fetch = self.inner.fetch(name, role, now);
        let renew = async {
            loop {
                tokio::time::sleep(self.config.lease_ttl / 3).await;
                if let Ok(Leased::Theirs) = self.lease(name).await {
                    tracing::warn!(role = name, "lost the refresher lease while refreshing");
                    return;
                }
            }
        };
        tokio::pin!(renew);
        let fetched = tokio::select! {
            fetched = &mut fetch => fetched,
            // Lost: the fetch goes on, but what it brings is not published.
            () = &mut renew => fetch.await,
        };
        // The lease as the store has it now decides, not the last renewal.
        let held = matches!(self.lease(name).await, Ok(Leased::Mine));
        (fetched, held)
    }

    /// Whether credentials are fresh enough not to refresh: more than the rotation margin left,
    /// plus a minute so that every node's timer sees them as fresh.
    fn fresh(credentials: &Credentials, now: u64) -> bool {
        credentials.expiration.is_some_and(|expiration| expiration > now + ROTATE_BEFORE + 60)
    }

    async fn fetch_fleet(&self, name: &str, role: &Role, now: u64) -> Result<Credentials, FetchError> {
        let started = tokio::time::Instant::now();
        // Waits at most one lease for another holder to publish, then takes over.
        let patience = self.config.lease_ttl + Duration::from_secs(5);
        loop {
            let wall = now + started.elapsed().as_secs();
            let published = self.published(name, role).await?;
            if let Some(credentials) = published.as_ref().filter(|c| Self::fresh(c, wall)) {
                return Ok(credentials.clone());
            }
            let leased = if self.config.refresher { self.lease(name).await? } else { Leased::Theirs };
            match leased {
                Leased::Mine => {
                    // The last holder may have published since the read above.
                    match self.published(name, role).await {
                        Ok(Some(credentials)) if Self::fresh(&credentials, wall) => {
                            self.release(name).await;
                            return Ok(credentials);
                        }
                        Ok(_) => {}
                        Err(err) => {
                            self.release(name).await;
                            return Err(err);
                        }
                    }
                    tracing::info!(role = name, holder = %self.config.holder, "refreshing the role for the fleet");
                    let (fetched, held) = self.fetch_holding(name, role, wall).await;
                    let credentials = match fetched {
                        Ok(credentials) => credentials,
                        Err(err) => {
                            self.release(name).await;
                            return Err(err);
                        }
                    };
                    if !held {
                        // Another node refreshes now: serve these here, publish nothing.
                        return Ok(credentials);
                    }
                    let sealed = self.seal(name, role, &credentials)?;
                    let put = Put {
                        key: records::fleet_credentials(name),
                        node: None,
                        claims: Vec::new(),
                        value: sealed,
                        expect: Expect::Any,
                    };
                    let committed = self.store.commit(vec![Op::Put(put)]).await.map_err(unavailable);
                    self.release(name).await;
                    committed?;
                    return Ok(credentials);
                }
                Leased::Theirs if started.elapsed() >= patience => {
                    // The holder kept its lease without publishing: serve what there is.
                    return published.ok_or_else(|| {
                        FetchError::Unreachable(format!("role {name}: waiting for the fleet's refresher"))
                    });
                }
                Leased::Theirs => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }
}

/// A store failure as a fetch failure (retried by the manager with back-off).
fn unavailable(err: imds_store::StoreError) -> FetchError {
    FetchError::Unreachable(format!("store: {err}"))
}

impl Fetch for FleetFetch {
    fn fetch<'a>(&'a self, name: &'a str, role: &'a Role, now: u64) -> imds_creds::Fetching<'a> {
        match role.source {
            // Nothing to refresh: the record holds them.
            Source::Static { .. } => self.inner.fetch(name, role, now),
            // One instance's own session: only its node serves it, so its node assumes it
            // (once per fleet already), if it may read base credentials.
            _ if role.source.session_per_instance() && self.config.refresher => self.inner.fetch(name, role, now),
            _ if role.source.session_per_instance() => Box::pin(async move {
                Err(FetchError::Unreachable(format!(
                    "role {}: sessions per instance are assumed by the instance's node, which is no refresher",
                    crate::creds::role_of(name)
                )))
            }),
            _ => Box::pin(self.fetch_fleet(name, role, now)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source whose fetch loses the refresher lease to another node before it answers (as
    /// when a holder's renewals stop reaching the store past the TTL), counting its calls.
    #[derive(Debug)]
    struct LosesTheLease {
        store: Arc<dyn Store>,
        holder: String,
        calls: std::sync::atomic::AtomicUsize,
    }

    impl Fetch for LosesTheLease {
        fn fetch<'a>(&'a self, name: &'a str, _role: &'a Role, _now: u64) -> imds_creds::Fetching<'a> {
            Box::pin(async move {
                self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let key = records::refresher(name);
                self.store.release(&key, &self.holder).await.unwrap();
                let taken = self.store.acquire(&key, "hv-b", Duration::from_secs(60)).await.unwrap();
                assert_eq!(taken, Acquired::Held);
                Ok(Credentials {
                    access_key_id: "ASIALOST".into(),
                    secret_access_key: Secret::new("lost-secret"),
                    session_token: None,
                    expiration: Some(2_000_000_000),
                })
            })
        }
    }

    #[tokio::test]
    async fn a_refresher_that_lost_its_lease_serves_what_it_fetched_but_publishes_nothing() {
        let store: Arc<dyn Store> = Arc::new(imds_store::memory::MemoryStore::new());
        let inner = Arc::new(LosesTheLease {
            store: Arc::clone(&store),
            holder: "hv-a".into(),
            calls: std::sync::atomic::AtomicUsize::new(0),
        });
        let config = Config {
            key: FleetKey([7; 32]),
            holder: "hv-a".into(),
            lease_ttl: Duration::from_secs(15),
            refresher: true,
        };
        let fleet = FleetFetch::new(Arc::clone(&inner) as Arc<dyn Fetch>, Arc::clone(&store), config);
        let role: Role = serde_json::from_str(r#"{"source": {"type": "process", "command": ["/bin/true"]}}"#).unwrap();
        let served = fleet.fetch("app", &role, 1_900_000_000).await.unwrap();
        assert_eq!(served.access_key_id, "ASIALOST");
        assert_eq!(inner.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(store.get(&records::fleet_credentials("app")).await.unwrap().is_none(), "published without the lease");
        // The lease stays with the node that took it.
        let lease = store.acquire(&records::refresher("app"), "hv-a", Duration::from_secs(15)).await.unwrap();
        assert_eq!(lease, Acquired::HeldBy("hv-b".into()));
    }

    #[test]
    fn sealed_credentials_open_only_with_the_key_and_the_same_role() {
        let store: Arc<dyn Store> = Arc::new(imds_store::memory::MemoryStore::new());
        let config = Config {
            key: FleetKey([7; 32]),
            holder: "hv-a".into(),
            lease_ttl: Duration::from_secs(15),
            refresher: true,
        };
        let fleet = FleetFetch::new(Arc::new(imds_creds::Sources::default()), Arc::clone(&store), config.clone());
        let role: Role = serde_json::from_str(r#"{"source": {"type": "process", "command": ["/bin/true"]}}"#).unwrap();
        let credentials = Credentials {
            access_key_id: "AKIAFLEET".into(),
            secret_access_key: Secret::new("fleet-secret"),
            session_token: Some(Secret::new("fleet-token")),
            expiration: Some(2_000_000_000),
        };
        let sealed = fleet.seal("app", &role, &credentials).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("fleet-secret"));
        assert_eq!(fleet.open("app", &role, &sealed), Some(credentials));
        assert_eq!(fleet.open("other", &role, &sealed), None, "bound to the role name");
        let changed: Role =
            serde_json::from_str(r#"{"source": {"type": "process", "command": ["/bin/false"]}}"#).unwrap();
        assert_eq!(fleet.open("app", &changed, &sealed), None, "bound to the role's version");
        let other = FleetFetch::new(
            Arc::new(imds_creds::Sources::default()),
            store,
            Config { key: FleetKey([8; 32]), ..config },
        );
        assert_eq!(other.open("app", &role, &sealed), None, "another key");
        assert_eq!(format!("{:?}", FleetKey([7; 32])), "FleetKey(<redacted>)");
    }
}
