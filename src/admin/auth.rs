//! Credentials for protected admin paths: a bearer token read from a file
//! (re-read when it changes, so a rotated Kubernetes Secret takes effect
//! without a restart) or HTTP basic auth. Comparisons are constant-time;
//! a wrong or missing credential gets `401` with `WWW-Authenticate`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Response, StatusCode};
use http_body_util::Full;
use prometheus_client::metrics::counter::Counter;
use tokio_util::sync::CancellationToken;

use crate::config::admin::AuthConfig;
use crate::config::Secret;

/// Reads a token file: trimmed, non-empty. The error names the file, never
/// its content.
pub fn read_token(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret::new(token))
}

/// Compares in time that depends only on the lengths, not on where the
/// inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// Counters of token-file reloads.
#[derive(Debug, Clone, Default)]
pub struct ReloadCounters {
    /// A changed token was read and is now required.
    pub ok: Counter,
    /// The file could not be read (or was empty); the old token stays.
    pub error: Counter,
}

/// The credential a listener requires.
#[derive(Debug, Clone)]
pub struct Auth {
    scheme: Scheme,
}

#[derive(Debug, Clone)]
enum Scheme {
    Bearer {
        path: PathBuf,
        token: Arc<RwLock<Secret>>,
        interval: Duration,
        reloads: ReloadCounters,
        /// The last read error, so a lasting one is reported once.
        failed: Arc<std::sync::Mutex<Option<String>>>,
    },
    /// The expected `Authorization` value after `Basic `.
    Basic(Secret),
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization` header (or another scheme).
    Missing,
    /// A credential that does not match.
    Invalid,
}

impl Auth {
    /// The credential of `config`, or `None` when it asks for none.
    pub fn build(config: &AuthConfig, reloads: ReloadCounters) -> Result<Option<Self>, String> {
        let scheme = match (&config.token_file, &config.username, &config.password) {
            (Some(path), _, _) => Scheme::Bearer {
                token: Arc::new(RwLock::new(read_token(path)?)),
                path: path.clone(),
                interval: config.reload_interval,
                reloads,
                failed: Arc::default(),
            },
            (None, Some(user), Some(password)) => Scheme::Basic(Secret::new(
                crate::http_client::base64(format!("{user}:{}", password.expose()).as_bytes()),
            )),
            _ => return Ok(None),
        };
        Ok(Some(Self { scheme }))
    }

    /// Whether `headers` carry the right credential.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let (prefix, expected) = match &self.scheme {
            Scheme::Bearer { token, .. } => (
                "bearer ",
                match token.read() {
                    Ok(token) => token.clone(),
                    Err(poisoned) => poisoned.into_inner().clone(),
                },
            ),
            Scheme::Basic(expected) => ("basic ", expected.clone()),
        };
        let value = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .filter(|v| {
                v.len() > prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
            })
            .ok_or(Refusal::Missing)?;
        let given = value[prefix.len()..].trim_ascii();
        if constant_time_eq(given, expected.expose().as_bytes()) {
            Ok(())
        } else {
            Err(Refusal::Invalid)
        }
    }

    /// The `WWW-Authenticate` challenge.
    pub fn challenge(&self) -> &'static str {
        match self.scheme {
            Scheme::Bearer { .. } => r#"Bearer realm="sidewatch""#,
            Scheme::Basic(_) => r#"Basic realm="sidewatch", charset="UTF-8""#,
        }
    }

    /// The `401` answer for a refused request.
    pub fn unauthorized(&self) -> Response<Full<Bytes>> {
        Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(header::WWW_AUTHENTICATE, self.challenge())
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from_static(b"unauthorized\n")))
            .unwrap_or_default()
    }

    /// Re-reads the token file when it changed; keeps the old token when it
    /// cannot be read. Returns whether a new token is now required.
    pub fn refresh(&self) -> bool {
        let Scheme::Bearer {
            path,
            token,
            reloads,
            failed,
            ..
        } = &self.scheme
        else {
            return false;
        };
        let mut failed = match failed.lock() {
            Ok(failed) => failed,
            Err(poisoned) => poisoned.into_inner(),
        };
        match read_token(path) {
            Ok(new) => {
                *failed = None;
                let mut current = match token.write() {
                    Ok(current) => current,
                    Err(poisoned) => poisoned.into_inner(),
                };
                if *current == new {
                    return false;
                }
                *current = new;
                reloads.ok.inc();
                tracing::info!(token_file = %path.display(), "admin bearer token reloaded");
                true
            }
            Err(error) => {
                // Counted and logged once per distinct problem, not at every check.
                if failed.as_deref() != Some(error.as_str()) {
                    reloads.error.inc();
                    tracing::warn!(%error, "admin bearer token not reloaded; the previous one stays");
                    *failed = Some(error);
                }
                false
            }
        }
    }

    /// Checks the token file every `reload_interval` until `stop` (basic
    /// auth: returns at once).
    pub async fn watch(self, stop: CancellationToken) {
        let Scheme::Bearer { interval, .. } = &self.scheme else {
            return;
        };
        let interval = *interval;
        let auth = self.clone();
        super::watch_files(interval, stop, "admin token check", move || auth.refresh()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(crate::http_client::base64(input.as_bytes()), output);
        }
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn bearer_token_is_checked_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let config = AuthConfig {
            token_file: Some(path.clone()),
            ..AuthConfig::default()
        };
        let reloads = ReloadCounters::default();
        let auth = Auth::build(&config, reloads.clone()).unwrap().unwrap();
        assert_eq!(auth.check(&headers("Bearer first")), Ok(()));
        assert_eq!(auth.check(&headers("bearer first")), Ok(()));
        assert_eq!(auth.check(&headers("Bearer wrong")), Err(Refusal::Invalid));
        assert_eq!(auth.check(&HeaderMap::new()), Err(Refusal::Missing));
        assert_eq!(auth.check(&headers("Basic Zm9v")), Err(Refusal::Missing));
        assert!(!auth.refresh());
        std::fs::write(&path, "second").unwrap();
        assert!(auth.refresh());
        assert_eq!(auth.check(&headers("Bearer first")), Err(Refusal::Invalid));
        assert_eq!(auth.check(&headers("Bearer second")), Ok(()));
        std::fs::remove_file(&path).unwrap();
        assert!(!auth.refresh());
        assert!(!auth.refresh());
        assert_eq!(auth.check(&headers("Bearer second")), Ok(()));
        assert_eq!((reloads.ok.get(), reloads.error.get()), (1, 1));
    }

    #[test]
    fn basic_auth_needs_user_and_password() {
        let config = AuthConfig {
            username: Some("Aladdin".into()),
            password: Some(Secret::new("open sesame")),
            ..AuthConfig::default()
        };
        let auth = Auth::build(&config, ReloadCounters::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            auth.check(&headers("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")),
            Ok(())
        );
        assert_eq!(
            auth.check(&headers("Basic QWxhZGRpbjpvcGVuIHNlc2FtZR==")),
            Err(Refusal::Invalid)
        );
        assert!(auth.challenge().starts_with("Basic "));
    }
}
