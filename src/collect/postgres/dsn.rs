//! Connection strings: libpq URLs and key=value pairs. tokio-postgres parses
//! them after sidewatch takes out the TLS settings it does not know
//! (`sslmode=verify-ca`/`verify-full`, `sslrootcert`), so a `DATABASE_URL`
//! written for libpq works unchanged.

use std::error::Error as _;
use std::path::PathBuf;

/// How the server's certificate is checked when the connection uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Not at all: encrypted, not authenticated (libpq `prefer`/`require`
    /// without a root certificate).
    Nothing,
    /// The chain up to a trusted root, not the host name (`verify-ca`, or
    /// `prefer`/`require` with a root certificate, as in libpq).
    Chain,
    /// The chain and the host name (`verify-full`).
    Full,
}

/// A parsed connection string.
#[derive(Debug, Clone)]
pub struct Dsn {
    /// Everything tokio-postgres understands (`sslmode` is `require` for the
    /// `verify-*` modes).
    pub config: tokio_postgres::Config,
    /// Certificate checking when TLS is used.
    pub verify: Verify,
    /// `sslrootcert`: PEM file of trusted roots; `None` means the web PKI roots.
    pub root_cert: Option<PathBuf>,
}

/// Why a connection string is unusable. Messages never quote the string.
#[derive(Debug, thiserror::Error)]
pub enum DsnError {
    /// Empty.
    #[error("must be set")]
    Empty,
    /// Does not parse.
    #[error("not a valid PostgreSQL connection string: {0}")]
    Invalid(String),
}

/// Parses a URL (`postgres://...`) or key=value connection string.
pub fn parse(dsn: &str) -> Result<Dsn, DsnError> {
    let dsn = dsn.trim();
    if dsn.is_empty() {
        return Err(DsnError::Empty);
    }
    let (rest, extras) = take_tls_extras(dsn);
    let config = rest
        .parse::<tokio_postgres::Config>()
        .map_err(|e| DsnError::Invalid(safe_reason(&e)))?;
    let root_cert = extras
        .root_cert
        .filter(|path| path != "system")
        .map(PathBuf::from);
    let verify = match (extras.verify, &root_cert) {
        (Some(verify), _) => verify,
        (None, Some(_)) => Verify::Chain,
        (None, None) => Verify::Nothing,
    };
    Ok(Dsn {
        config,
        verify,
        root_cert,
    })
}

/// The parse error's cause when it names an option, else a generic hint:
/// tokio-postgres's syntax errors can quote characters of the string.
fn safe_reason(error: &tokio_postgres::Error) -> String {
    let cause = error.source().map(ToString::to_string).unwrap_or_default();
    if cause.starts_with("unknown option `") || cause.starts_with("invalid value for option `") {
        cause
    } else {
        "check the URL or key=value syntax, quoting and percent-encoding".into()
    }
}

#[derive(Debug, Default)]
struct TlsExtras {
    verify: Option<Verify>,
    root_cert: Option<String>,
}

impl TlsExtras {
    /// Takes `key=value` if it is one of the extras; returns the replacement
    /// parameter (if any) to keep in the string.
    fn take(&mut self, key: &str, value: &str) -> Option<Option<&'static str>> {
        match (key, value) {
            ("sslmode", "verify-ca") => self.verify = Some(Verify::Chain),
            ("sslmode", "verify-full") => self.verify = Some(Verify::Full),
            ("sslrootcert", path) => {
                self.root_cert = Some(path.to_owned());
                return Some(None);
            }
            _ => return None,
        }
        Some(Some("sslmode=require"))
    }
}

/// Splits the libpq-only TLS settings off the string.
fn take_tls_extras(dsn: &str) -> (String, TlsExtras) {
    let mut extras = TlsExtras::default();
    let url = ["postgres://", "postgresql://"]
        .iter()
        .any(|scheme| dsn.starts_with(scheme));
    if url {
        let Some((base, query)) = dsn.split_once('?') else {
            return (dsn.to_owned(), extras);
        };
        let mut kept = Vec::new();
        for raw in query.split('&').filter(|p| !p.is_empty()) {
            let decoded = url::form_urlencoded::parse(raw.as_bytes()).next();
            match decoded.and_then(|(k, v)| extras.take(&k, &v)) {
                Some(Some(replacement)) => kept.push(replacement),
                Some(None) => {}
                None => kept.push(raw),
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rest, extras);
    }
    let Some(pairs) = key_values(dsn) else {
        // Let tokio-postgres report the syntax error.
        return (dsn.to_owned(), extras);
    };
    let mut kept = Vec::new();
    for (key, value, raw) in pairs {
        match extras.take(&key, &value) {
            Some(Some(replacement)) => kept.push(replacement),
            Some(None) => {}
            None => kept.push(raw),
        }
    }
    (kept.join(" "), extras)
}

/// Splits a key=value string into (key, unescaped value, raw text), with
/// libpq's grammar: optional spaces around `=`, values single-quoted or bare,
/// backslash escapes. `None` when it does not follow the grammar.
fn key_values(dsn: &str) -> Option<Vec<(String, String, &str)>> {
    let mut pairs = Vec::new();
    let mut chars = dsn.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            return Some(pairs);
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        chars.next_if(|(_, c)| *c == '=')?;
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let quoted = chars.next_if(|(_, c)| *c == '\'').is_some();
        let mut value = String::new();
        let mut end = dsn.len();
        let mut closed = !quoted;
        while let Some((i, c)) = chars.next() {
            if quoted && c == '\'' {
                closed = true;
                end = i + 1;
                break;
            }
            if !quoted && c.is_whitespace() {
                end = i;
                break;
            }
            if c == '\\' {
                value.push(chars.next()?.1);
            } else {
                value.push(c);
            }
        }
        if !closed || key.is_empty() {
            return None;
        }
        pairs.push((key, value, &dsn[start..end]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_with_libpq_tls_settings() {
        let dsn =
            parse("postgres://u:p%40ss@db:6432/app?sslmode=verify-full&sslrootcert=%2Fca.pem&connect_timeout=3")
                .unwrap();
        assert_eq!(dsn.verify, Verify::Full);
        assert_eq!(dsn.root_cert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(
            dsn.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert_eq!(dsn.config.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(dsn.config.get_dbname(), Some("app"));
        assert_eq!(dsn.config.get_ports(), [6432]);
    }

    #[test]
    fn key_value_with_quotes_and_tls_settings() {
        let dsn = parse(
            r"host=db  user = monitor password='a b\'c' sslmode=verify-ca sslrootcert='/etc/ca dir/ca.pem'",
        )
        .unwrap();
        assert_eq!(dsn.verify, Verify::Chain);
        assert_eq!(dsn.root_cert, Some(PathBuf::from("/etc/ca dir/ca.pem")));
        assert_eq!(dsn.config.get_password(), Some(&b"a b'c"[..]));
        assert_eq!(dsn.config.get_user(), Some("monitor"));
    }

    #[test]
    fn libpq_defaults_for_certificate_checks() {
        assert_eq!(parse("host=db").unwrap().verify, Verify::Nothing);
        assert_eq!(
            parse("postgres://db/x?sslmode=require").unwrap().verify,
            Verify::Nothing
        );
        let with_root = parse("postgres://db/x?sslmode=require&sslrootcert=/r.pem").unwrap();
        assert_eq!(with_root.verify, Verify::Chain);
        let system = parse("host=db sslrootcert=system sslmode=verify-full").unwrap();
        assert_eq!((system.verify, system.root_cert), (Verify::Full, None));
    }

    #[test]
    fn errors_never_quote_the_string() {
        for bad in [
            "postgres://u:hunter2@h/db?sslmode=bogus",
            "postgres://u:hunter2@h/db?hunter=2",
            "host=h password='hunter2",
            "host=h hunter2",
            "postgres://u:hunter2@[::1/db",
        ] {
            let error = parse(bad).unwrap_err().to_string();
            assert!(!error.contains("hunter2"), "{bad}: {error}");
        }
        assert_eq!(parse("  ").unwrap_err().to_string(), "must be set");
    }
}
