//! `[admin.tls]`, `[admin.auth]` and `[admin.limits]`: securing the admin
//! listener. The same three sections are meant for every sidewatch HTTP
//! listener that serves people or Prometheus (the admin-actions listener too).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::secret::Secret;
use super::validate::Errors;

/// TLS for a listener (rustls). The certificate and key files are re-read
/// when their content changes (cert-manager rotation), without a restart; a
/// new pair that does not load keeps the old one serving (counted, logged).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate chain, leaf first (`tls.crt`).
    pub cert_file: PathBuf,
    /// PEM file with the private key of the leaf (`tls.key`; PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM file with CAs whose client certificates are accepted; when set,
    /// every client must present one (mutual TLS). Read at start.
    pub client_ca_file: Option<PathBuf>,
    /// How often the certificate and key files are checked for a change.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_file: PathBuf::new(),
            key_file: PathBuf::new(),
            client_ca_file: None,
            reload_interval: Duration::from_secs(5),
        }
    }
}

/// Credentials required for `/metrics` and `/status` (never for `/healthz`
/// and `/readyz`, which kubelet probes without credentials). At most one of
/// `token_file` and `username` may be set; neither means no authentication.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// File holding the bearer token (`Authorization: Bearer <token>`;
    /// surrounding whitespace trimmed). Re-read when it changes, so a
    /// rotated Kubernetes Secret takes effect without a restart.
    pub token_file: Option<PathBuf>,
    /// Basic auth: the user name.
    pub username: Option<String>,
    /// Basic auth: the password, as `{ file = "/path" }` or `{ env = "VAR" }`
    /// (a plain string works too, but then it sits in the config file).
    pub password: Option<Secret>,
    /// How often `token_file` is checked for a change.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
}

impl AuthConfig {
    /// Whether any credential is required.
    pub fn is_enabled(&self) -> bool {
        self.token_file.is_some() || self.username.is_some()
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            token_file: None,
            username: None,
            password: None,
            reload_interval: Duration::from_secs(5),
        }
    }
}

/// Size limits of requests to a listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request head (request line + headers) in bytes; larger gets `431`.
    pub max_header_bytes: usize,
    /// Most request headers; more get `431`.
    pub max_headers: usize,
    /// Largest request body in bytes; larger gets `413`.
    pub max_body_bytes: usize,
    /// Longest wait for a request's headers (and the TLS handshake).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_body_bytes: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// Smallest head buffer hyper accepts.
pub const MIN_HEADER_BYTES: usize = 8192;

/// Checks the three sections of the listener whose config key is `key`.
pub(crate) fn validate(
    key: &str,
    tls: Option<&TlsConfig>,
    auth: &AuthConfig,
    limits: &LimitsConfig,
    errors: &mut Errors,
) {
    if let Some(tls) = tls {
        for problem in crate::admin::tls::check(tls) {
            errors.push(format!("{key}.tls.{}", problem.field), problem.message);
        }
        errors.positive(&format!("{key}.tls.reload_interval"), tls.reload_interval);
    }
    match (&auth.token_file, &auth.username, &auth.password) {
        (Some(_), Some(_), _) => errors.push(
            format!("{key}.auth"),
            "set either `token_file` (bearer) or `username` + `password` (basic), not both",
        ),
        (Some(path), None, _) => {
            if let Err(message) = crate::admin::auth::read_token(path) {
                errors.push(format!("{key}.auth.token_file"), message);
            }
        }
        (None, Some(name), password) => {
            if name.is_empty() || name.contains(':') {
                errors.push(
                    format!("{key}.auth.username"),
                    "must be non-empty and without `:`",
                );
            }
            if password.as_ref().is_none_or(|p| p.expose().is_empty()) {
                errors.push(
                    format!("{key}.auth.password"),
                    "must be set (and non-empty) with `username`",
                );
            }
        }
        (None, None, Some(_)) => errors.push(
            format!("{key}.auth.username"),
            "must be set with `password`",
        ),
        (None, None, None) => {}
    }
    if auth.is_enabled() {
        errors.positive(&format!("{key}.auth.reload_interval"), auth.reload_interval);
    }
    if limits.max_header_bytes < MIN_HEADER_BYTES {
        errors.push(
            format!("{key}.limits.max_header_bytes"),
            format!("must be at least {MIN_HEADER_BYTES}"),
        );
    }
    if limits.max_headers == 0 {
        errors.push(
            format!("{key}.limits.max_headers"),
            "must be greater than zero",
        );
    }
    errors.positive(
        &format!("{key}.limits.header_read_timeout"),
        limits.header_read_timeout,
    );
}

/// Whether `addr` only accepts connections from inside the pod (loopback).
pub fn is_loopback(addr: &std::net::SocketAddr) -> bool {
    addr.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::{load_from_str, Format};

    fn keys(text: &str) -> Vec<String> {
        let errors = load_from_str(text, Format::Toml, &HashMap::new()).unwrap_err();
        errors.0.into_iter().map(|e| e.key).collect()
    }

    #[test]
    fn defaults_have_no_tls_and_no_auth() {
        let config = load_from_str("", Format::Toml, &HashMap::new()).unwrap();
        assert!(config.admin.tls.is_none());
        assert!(!config.admin.auth.is_enabled());
        assert_eq!(config.admin.limits.max_header_bytes, 16 * 1024);
    }

    #[test]
    fn missing_tls_files_are_named_by_key_and_path() {
        let text = "[admin.tls]\ncert_file = \"/nonexistent/tls.crt\"\nkey_file = \"/nonexistent/tls.key\"\n";
        let errors = load_from_str(text, Format::Toml, &HashMap::new()).unwrap_err();
        let shown = errors.to_string();
        for part in [
            "admin.tls.cert_file",
            "/nonexistent/tls.crt",
            "admin.tls.key_file",
            "/nonexistent/tls.key",
        ] {
            assert!(shown.contains(part), "{part} missing from {shown}");
        }
    }

    #[test]
    fn auth_and_limit_mistakes_are_reported_by_key() {
        let keys = keys(
            "[admin.auth]\ntoken_file = \"/nonexistent/token\"\nusername = \"prom\"\n[admin.limits]\nmax_header_bytes = 100\nmax_headers = 0\n",
        );
        for key in [
            "admin.auth",
            "admin.limits.max_header_bytes",
            "admin.limits.max_headers",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
        }
        let keys = self::keys("[admin.auth]\nusername = \"prom\"\n");
        assert_eq!(keys, vec!["admin.auth.password"]);
        let keys = self::keys("[admin.auth]\ntoken_file = \"/nonexistent/token\"\n");
        assert_eq!(keys, vec!["admin.auth.token_file"]);
    }

    #[test]
    fn intake_off_loopback_needs_allow_remote() {
        let text = r#"
            [[logs.sources]]
            type = "http"
            listen = "0.0.0.0:4793"
            [[logs.sources]]
            type = "tcp"
            name = "tcp"
            listen = "[::]:4792"
            [[logs.sinks]]
            type = "stdout"
            [statsd]
            enabled = true
            listen = "10.0.0.1:8125"
        "#;
        let errors = load_from_str(text, Format::Toml, &HashMap::new()).unwrap_err();
        let keys: Vec<_> = errors.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "logs.sources[0].listen",
                "logs.sources[1].listen",
                "statsd.listen"
            ],
            "{errors}"
        );
        assert!(
            errors.to_string().contains("allow_remote = true"),
            "{errors}"
        );
        let allowed = text
            .replace("type = \"http\"", "type = \"http\"\nallow_remote = true")
            .replace("name = \"tcp\"", "name = \"tcp\"\nallow_remote = true")
            .replace("enabled = true", "enabled = true\nallow_remote = true");
        load_from_str(&allowed, Format::Toml, &HashMap::new()).unwrap();
        let local = "[[logs.sources]]\ntype = \"http\"\n[[logs.sinks]]\ntype = \"stdout\"\n";
        let config = load_from_str(local, Format::Toml, &HashMap::new()).unwrap();
        assert!(config.logs.sources[0].effective_listen().ip().is_loopback());
    }
}
