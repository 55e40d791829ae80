//! Loading: a TOML or YAML file, overlaid with `SIDEWATCH__SECTION__KEY`
//! environment variables, deserialized with the failing key path recorded,
//! then validated as a whole.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use super::Config;

/// The environment variable prefix for overrides (`SIDEWATCH__ADMIN__LISTEN=...`).
const ENV_PREFIX: &str = "SIDEWATCH";
/// Separates the prefix and the levels of the key path in override variables.
const ENV_SEPARATOR: &str = "__";

/// The format of a configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TOML (`.toml`, and the default for other extensions).
    Toml,
    /// YAML (`.yaml`, `.yml`).
    Yaml,
}

impl Format {
    /// Picks the format from a file's extension.
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Format::Yaml,
            _ => Format::Toml,
        }
    }

    fn file_format(self) -> config::FileFormat {
        match self {
            Format::Toml => config::FileFormat::Toml,
            Format::Yaml => config::FileFormat::Yaml,
        }
    }
}

/// One problem with the configuration, tied to the key it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, e.g. `health.targets[0].url`; empty for the file itself.
    pub key: String,
    /// What is wrong, free of secret values.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "`{}`: {}", self.key, self.message)
        }
    }
}

/// Every problem found in a configuration; loading fails once, reporting all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub(crate) fn one(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self(vec![ConfigError {
            key: key.into(),
            message: message.into(),
        }])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "invalid configuration ({n} error{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for error in &self.0 {
            write!(f, "\n  - {error}")?;
        }
        Ok(())
    }
}

/// Loads the configuration from `path` (or defaults when `None`), overlaid
/// with overrides from `env` (normally `std::env::vars()`), and validates it.
pub fn load(path: Option<&Path>, env: &HashMap<String, String>) -> Result<Config, ConfigErrors> {
    let file = match path {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigErrors::one("", format!("cannot read {}: {e}", path.display()))
            })?;
            Some((text, Format::from_path(path)))
        }
    };
    build(
        file.as_ref().map(|(text, format)| (text.as_str(), *format)),
        env,
    )
}

/// Loads the configuration from text already in memory (the demo's embedded
/// config, tests), overlaid with `env` and validated.
pub fn load_from_str(
    text: &str,
    format: Format,
    env: &HashMap<String, String>,
) -> Result<Config, ConfigErrors> {
    build(Some((text, format)), env)
}

/// Loads and validates; every message passes [`super::secret::mask_credentials`]
/// (parse errors quote the value, which may be a URL with a password).
fn build(
    file: Option<(&str, Format)>,
    env: &HashMap<String, String>,
) -> Result<Config, ConfigErrors> {
    build_unmasked(file, env).map_err(|errors| {
        ConfigErrors(
            errors
                .0
                .into_iter()
                .map(|error| ConfigError {
                    key: error.key,
                    message: super::secret::mask_credentials(&error.message),
                })
                .collect(),
        )
    })
}

fn build_unmasked(
    file: Option<(&str, Format)>,
    env: &HashMap<String, String>,
) -> Result<Config, ConfigErrors> {
    let mut builder = config::Config::builder();
    if let Some((text, Format::Yaml)) = file {
        crate::inject::yaml::check_aliases(text)
            .map_err(|e| ConfigErrors::one("", format!("cannot parse configuration: {e}")))?;
    }
    if let Some((text, format)) = file {
        builder = builder.add_source(config::File::from_str(text, format.file_format()));
    }
    let overrides: config::Map<String, String> = env
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}{ENV_SEPARATOR}")))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .try_parsing(true)
            .source(Some(overrides)),
    );
    let merged = builder
        .build()
        .map_err(|e| ConfigErrors::one("", format!("cannot parse configuration: {e}")))?;
    let mut config: Config = serde_path_to_error::deserialize(merged.clone()).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { String::new() } else { key };
        let message = e.into_inner().to_string();
        let message = match message.contains("does not have variant constructor") {
            true => message_with_values(&merged, &key).unwrap_or(message),
            false => message,
        };
        ConfigErrors::one(key, message)
    })?;
    let mut errors = config.otlp.apply_env(env);
    errors.extend(super::validate::validate(&config));
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// An unknown value of a key with a fixed set of them: the `config`
/// crate's message ("enum AppHttp2 does not have variant constructor x")
/// names neither the values allowed nor how to spell them; serde's own
/// does ("unknown variant `x`, expected one of `grpc`, `always`, `never`",
/// said here as "unknown value"). It comes from a second reading of the
/// same values through JSON, taken only when that reading fails at the same
/// key.
fn message_with_values(merged: &config::Config, key: &str) -> Option<String> {
    let json: serde_json::Value = merged.clone().try_deserialize().ok()?;
    let error = serde_path_to_error::deserialize::<_, Config>(json).err()?;
    let message = error.inner().to_string();
    (error.path().to_string() == key)
        .then(|| message.replacen("unknown variant", "unknown value", 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn first_error(text: &str, format: Format) -> ConfigError {
        load_from_str(text, format, &HashMap::new())
            .unwrap_err()
            .0
            .remove(0)
    }

    #[test]
    fn an_unknown_value_of_a_fixed_set_names_the_values_allowed() {
        let text = "[proxy]\nupstream = \"127.0.0.1:8080\"\napp_http2 = \"sometimes\"\n";
        let error = first_error(text, Format::Toml);
        assert_eq!(error.key, "proxy.app_http2");
        assert_eq!(
            error.message,
            "unknown value `sometimes`, expected one of `grpc`, `always`, `never`"
        );
        let error = first_error("otlp:\n  protocol: carrier-pigeon\n", Format::Yaml);
        assert_eq!(error.key, "otlp.protocol");
        assert!(
            error.message.contains("expected `http/protobuf` or `grpc`"),
            "{error:?}"
        );
    }

    #[test]
    fn empty_config_is_all_defaults() {
        let config = load_from_str("", Format::Toml, &HashMap::new()).unwrap();
        assert_eq!(config.admin.listen.port(), 4790);
        assert!(config.health.targets.is_empty());
    }

    #[test]
    fn unknown_key_is_named_with_its_path() {
        let error = first_error("[admin]\nlisten = \"0.0.0.0:1\"\nlistn = 3\n", Format::Toml);
        assert_eq!(error.key, "admin.listn");
        assert!(error.message.contains("unknown field"), "{error}");
    }

    #[test]
    fn wrong_type_is_named_with_its_path() {
        let error = first_error(
            "[[health.targets]]\nname = \"app\"\nurl = \"http://x/\"\ntimeout = 5\n",
            Format::Toml,
        );
        assert_eq!(error.key, "health.targets[0].timeout", "{error}");
    }

    #[test]
    fn yaml_is_accepted() {
        let config = load_from_str(
            "health:\n  targets:\n    - name: app\n      tcp: 127.0.0.1:1\n",
            Format::Yaml,
            &HashMap::new(),
        )
        .unwrap();
        assert_eq!(config.health.targets[0].name, "app");
    }

    #[test]
    fn env_overrides_the_file() {
        let config = load_from_str(
            "[admin]\nlisten = \"0.0.0.0:1\"\n",
            Format::Toml,
            &env(&[
                ("SIDEWATCH__ADMIN__LISTEN", "127.0.0.1:9999"),
                ("SIDEWATCH__SHUTDOWN__GRACE_PERIOD", "3s"),
                ("SIDEWATCH_APP_MEMORY_LIMIT", "1000"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(config.admin.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(config.shutdown.grace_period.as_secs(), 3);
    }

    #[test]
    fn unknown_env_override_is_named() {
        let errors =
            load_from_str("", Format::Toml, &env(&[("SIDEWATCH__ADMN__LISTEN", "x")])).unwrap_err();
        assert!(errors.to_string().contains("admn"), "{errors}");
    }

    #[test]
    fn missing_file_is_reported_with_its_path() {
        let errors = load(
            Some(Path::new("/nonexistent/sidewatch.toml")),
            &HashMap::new(),
        )
        .unwrap_err();
        assert!(errors.to_string().contains("/nonexistent/sidewatch.toml"));
    }

    #[test]
    fn yaml_alias_bombs_are_refused() {
        // Found with fuzz/config_load (a hand-written "billion laughs"
        // input): the YAML reader copied every alias, without bound.
        let text = format!(
            "admin: {{}}\n{}",
            crate::inject::yaml::tests::billion_laughs()
        );
        let error = first_error(&text, Format::Yaml);
        assert!(
            error.message.contains("aliases would copy more than"),
            "{error}"
        );
    }
}
