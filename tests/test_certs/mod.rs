//! Test certificates made with `openssl`, shared by the TLS tests (Redis,
//! Loki, OTLP), and the server config the in-test TLS servers use. Included with `mod test_certs;`.

use std::path::Path;
use std::process::Command;

/// Writes a test CA (`ca.crt`, `ca.key`) and a server certificate for
/// `localhost` and 127.0.0.1 signed by it (`server.crt`, `server.key`) into
/// `dir`, with `openssl`.
pub fn certificates(dir: &Path) {
    if Command::new("openssl").arg("version").output().is_err() {
        panic!("openssl is needed: apt-get install -y openssl");
    }
    let path = |name: &str| dir.join(name).display().to_string();
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl").args(args).output().unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &path("ca.key"),
        "-out",
        &path("ca.crt"),
        "-days",
        "2",
        "-subj",
        "/CN=sidewatch test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &path("server.key"),
        "-out",
        &path("server.csr"),
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        path("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path("server.csr"),
        "-CA",
        &path("ca.crt"),
        "-CAkey",
        &path("ca.key"),
        "-CAcreateserial",
        "-out",
        &path("server.crt"),
        "-days",
        "2",
        "-extfile",
        &path("san.ext"),
    ]);
}

/// A TLS server config (ring, the safe default protocol versions, no client
/// certificates) serving the PEM chain `cert` and its `key`, as the in-test
/// servers speak TLS.
#[allow(dead_code)] // not every test that makes certificates serves TLS
pub fn server_config(cert: &Path, key: &Path) -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap()
}
