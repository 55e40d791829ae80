//! TLS for sidewatch's HTTP listeners (rustls). The certificate and key are
//! served through a [`ResolvesServerCert`] that always hands out the last
//! pair that loaded; [`Tls::watch`] re-reads both files every few seconds and
//! swaps in a new pair when their content changed and the pair loads (the
//! certificate parses, the key parses and matches it). A pair that fails
//! keeps the old one serving, logged once and counted — cert-manager writes
//! `tls.crt` and `tls.key` one after the other, so a half-rotated pair is
//! normal for a moment and the next check picks up the finished one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::admin::TlsConfig;

/// A problem with one file of a `[….tls]` section.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Problem {
    /// The field of the section: `cert_file`, `key_file` or `client_ca_file`.
    pub field: &'static str,
    /// What is wrong, naming the file.
    pub message: String,
}

impl Problem {
    fn new(field: &'static str, path: &Path, what: impl std::fmt::Display) -> Self {
        Self {
            field,
            message: format!("{}: {what}", path.display()),
        }
    }
}

/// Every problem of `config`'s files (empty: TLS can start). Used by config
/// validation, so `check-config` reports them too.
pub fn check(config: &TlsConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    let pem = Pem {
        cert: read("cert_file", &config.cert_file),
        key: read("key_file", &config.key_file),
    };
    match (pem.cert, pem.key) {
        (Ok(cert), Ok(key)) => {
            if let Err(problem) =
                parse_pair(&Pem { cert, key }, &config.cert_file, &config.key_file)
            {
                problems.push(problem);
            }
        }
        (cert, key) => problems.extend(cert.err().into_iter().chain(key.err())),
    }
    if let Some(path) = &config.client_ca_file {
        if let Err(problem) = client_roots(path) {
            problems.push(problem);
        }
    }
    problems
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, Problem> {
    if path.as_os_str().is_empty() {
        return Err(Problem {
            field,
            message: "must be set".into(),
        });
    }
    std::fs::read(path).map_err(|e| Problem::new(field, path, format!("cannot read: {e}")))
}

/// The two files' bytes (or what reading them gave).
#[derive(Clone, PartialEq, Eq)]
struct Pem<T> {
    cert: T,
    key: T,
}

impl Pem<Result<Vec<u8>, Problem>> {
    fn check(self) -> Result<Pem<Vec<u8>>, Problem> {
        Ok(Pem {
            cert: self.cert?,
            key: self.key?,
        })
    }
}

fn load_pair(config: &TlsConfig) -> Result<(Pem<Vec<u8>>, Arc<CertifiedKey>), Problem> {
    let pem = Pem {
        cert: read("cert_file", &config.cert_file)?,
        key: read("key_file", &config.key_file)?,
    };
    let key = parse_pair(&pem, &config.cert_file, &config.key_file)?;
    Ok((pem, key))
}

fn parse_pair(
    pem: &Pem<Vec<u8>>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<CertifiedKey>, Problem> {
    let certs = CertificateDer::pem_slice_iter(&pem.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Problem::new("cert_file", cert_path, format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Problem::new(
            "cert_file",
            cert_path,
            "holds no PEM certificate",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&pem.key)
        .map_err(|e| Problem::new("key_file", key_path, format!("no PEM private key: {e}")))?;
    CertifiedKey::from_der(certs, key, &provider())
        .map(Arc::new)
        .map_err(|e| {
            Problem::new(
                "key_file",
                key_path,
                format!("unusable with {}: {e}", cert_path.display()),
            )
        })
}

fn client_roots(path: &Path) -> Result<Arc<RootCertStore>, Problem> {
    let pem = read("client_ca_file", path)?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert =
            cert.map_err(|e| Problem::new("client_ca_file", path, format!("not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| Problem::new("client_ca_file", path, e))?;
    }
    if roots.is_empty() {
        return Err(Problem::new(
            "client_ca_file",
            path,
            "holds no PEM certificate",
        ));
    }
    Ok(Arc::new(roots))
}

/// Counters of certificate reloads (see [`crate::admin::security`]).
#[derive(Debug, Clone, Default)]
pub struct ReloadCounters {
    /// A changed pair loaded and now serves.
    pub ok: Counter,
    /// A changed pair did not load; the old one keeps serving.
    pub error: Counter,
}

/// Hands out the current certificate; swapped by [`Tls::refresh`].
#[derive(Debug)]
struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match self.current.read() {
            Ok(current) => Some(Arc::clone(&current)),
            Err(poisoned) => Some(Arc::clone(&poisoned.into_inner())),
        }
    }
}

/// TLS of one listener: the acceptor and the watched certificate files.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    inner: Arc<Inner>,
}

/// What is serving, and the last failure (so it is not reported twice).
struct State {
    serving: Pem<Vec<u8>>,
    failed: Option<Failure>,
}

#[derive(PartialEq, Eq)]
enum Failure {
    Unreadable(String),
    Content(Pem<Vec<u8>>),
}

struct Inner {
    resolver: Arc<Resolver>,
    cert_file: PathBuf,
    key_file: PathBuf,
    interval: Duration,
    state: Mutex<State>,
    reloads: ReloadCounters,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert_file", &self.inner.cert_file)
            .field("key_file", &self.inner.key_file)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the files of `config`; the first problem is returned.
    pub fn build(config: &TlsConfig, reloads: ReloadCounters) -> Result<Self, Problem> {
        let (pem, key) = load_pair(config)?;
        let resolver = Arc::new(Resolver {
            current: RwLock::new(key),
        });
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Problem::new("cert_file", &config.cert_file, e))?;
        let builder = match &config.client_ca_file {
            Some(path) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(client_roots(path)?, provider())
                        .build()
                        .map_err(|e| Problem::new("client_ca_file", path, e))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut server = builder.with_cert_resolver(resolver.clone());
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        // No session resumption: every new connection is a full handshake
        // with the certificate serving now, so a rotation is seen by every
        // client at once (admin traffic is a scrape every few seconds).
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            inner: Arc::new(Inner {
                resolver,
                cert_file: config.cert_file.clone(),
                key_file: config.key_file.clone(),
                interval: config.reload_interval,
                state: Mutex::new(State {
                    serving: pem,
                    failed: None,
                }),
                reloads,
            }),
        })
    }

    /// The acceptor for incoming connections.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Re-reads the files; swaps in the new pair when it changed and loads.
    /// Returns whether a new certificate now serves.
    pub fn refresh(&self) -> bool {
        let inner = &self.inner;
        let mut state = match inner.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        let pem = Pem {
            cert: std::fs::read(&inner.cert_file).map_err(|e| {
                Problem::new("cert_file", &inner.cert_file, format!("cannot read: {e}"))
            }),
            key: std::fs::read(&inner.key_file).map_err(|e| {
                Problem::new("key_file", &inner.key_file, format!("cannot read: {e}"))
            }),
        };
        let (failure, problem) = match pem.check() {
            Err(problem) => (Failure::Unreadable(problem.message.clone()), problem),
            Ok(pem) if pem == state.serving => {
                state.failed = None;
                return false;
            }
            Ok(pem) if state.failed == Some(Failure::Content(pem.clone())) => return false,
            Ok(pem) => match parse_pair(&pem, &inner.cert_file, &inner.key_file) {
                Ok(key) => {
                    match inner.resolver.current.write() {
                        Ok(mut current) => *current = key,
                        Err(poisoned) => *poisoned.into_inner() = key,
                    }
                    state.serving = pem;
                    state.failed = None;
                    inner.reloads.ok.inc();
                    tracing::info!(cert_file = %inner.cert_file.display(), "TLS certificate reloaded");
                    return true;
                }
                Err(problem) => (Failure::Content(pem), problem),
            },
        };
        // Each distinct failure is counted and logged once, not at every check.
        if state.failed.as_ref() != Some(&failure) {
            inner.reloads.error.inc();
            tracing::warn!(
                error = %problem,
                key = problem.field,
                "TLS certificate not reloaded; the previous one keeps serving"
            );
            state.failed = Some(failure);
        }
        false
    }

    /// Checks the files every `reload_interval` until `stop`.
    pub async fn watch(self, stop: CancellationToken) {
        let interval = self.inner.interval;
        super::watch_files(interval, stop, "TLS certificate check", move || {
            self.refresh()
        })
        .await;
    }
}
