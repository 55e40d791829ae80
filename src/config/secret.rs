//! Secrets (DSNs, tokens, passwords) that never reach a log line, a metric
//! label, `/status` or an error message.

use std::fmt;
use std::path::PathBuf;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

/// What a masked secret prints as.
const MASK: &str = "***";

/// A secret value. `Debug`, `Display` and `Serialize` print `***`; only
/// [`Secret::expose`] gives the value.
///
/// In configuration it is written as a plain string, as `{ file = "/path" }`
/// (a Kubernetes secret mount; surrounding whitespace is trimmed) or as
/// `{ env = "VAR" }`. Files and variables are read while the config loads,
/// so a missing one is reported with its key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value itself. Call only where it is sent to its destination.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SecretSource {
    Value(String),
    File { file: PathBuf },
    Env { env: String },
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = SecretSource::deserialize(deserializer).map_err(|_| {
            D::Error::custom("expected a string, { file = \"/path\" } or { env = \"VAR\" }")
        })?;
        match source {
            SecretSource::Value(value) => Ok(Secret(value)),
            SecretSource::File { file } => std::fs::read_to_string(&file)
                .map(|s| Secret(s.trim().to_owned()))
                .map_err(|e| {
                    D::Error::custom(format!("cannot read secret file {}: {e}", file.display()))
                }),
            SecretSource::Env { env } => std::env::var(&env)
                .map(Secret)
                .map_err(|_| D::Error::custom(format!("environment variable {env} is not set"))),
        }
    }
}

/// A URL as it may be shown to people: the password, if any, replaced by `***`.
pub fn mask_url(url: &Url) -> String {
    if url.password().is_none() {
        return url.to_string();
    }
    let mut masked = url.clone();
    // Setting a password only fails for URLs that cannot have one, and this one has one.
    let _ = masked.set_password(Some(MASK));
    masked.to_string()
}

/// `text` with the password of every `scheme://user:password@` in it
/// replaced by `***`: for messages that may quote configured values (parse
/// errors of URLs that are not secrets themselves).
pub fn mask_credentials(text: &str) -> String {
    static USERINFO: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let pattern = USERINFO.get_or_init(|| {
        regex::Regex::new(r#"([A-Za-z][A-Za-z0-9+.\-]*://[^\s/@:"'`]*):[^\s@"'`]*@"#).ok()
    });
    match pattern {
        Some(pattern) => pattern.replace_all(text, "${1}:***@").into_owned(),
        // The pattern is fixed; should it ever not compile, show nothing.
        None => "(message withheld)".into(),
    }
}

/// Serializes an optional URL with its password masked.
pub(crate) fn serialize_optional_url<S: Serializer>(
    url: &Option<Url>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => serializer.serialize_str(&mask_url(url)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_display_and_serialize_mask_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"***\"");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn reads_from_file_and_trims() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").unwrap();
        let json = serde_json::json!({ "file": path });
        let secret: Secret = serde_json::from_value(json).unwrap();
        assert_eq!(secret.expose(), "s3cret");
    }

    #[test]
    fn missing_file_is_an_error_naming_the_file() {
        let json = serde_json::json!({ "file": "/nonexistent/sidewatch-token" });
        let err = serde_json::from_value::<Secret>(json).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/sidewatch-token"),
            "{err}"
        );
    }

    #[test]
    fn mask_credentials_hides_passwords_in_any_text() {
        assert_eq!(
            mask_credentials(r#"empty host: "http://probe:pw@/health" and redis://:x:y@h/0"#),
            r#"empty host: "http://probe:***@/health" and redis://:***@h/0"#
        );
        assert_eq!(mask_credentials("no url here: a:b@c"), "no url here: a:b@c");
    }

    #[test]
    fn mask_url_hides_only_the_password() {
        let url = Url::parse("postgres://app:pw@db:5432/app").unwrap();
        assert_eq!(mask_url(&url), "postgres://app:***@db:5432/app");
        let plain = Url::parse("http://127.0.0.1:8080/health").unwrap();
        assert_eq!(mask_url(&plain), "http://127.0.0.1:8080/health");
    }
}
