//! Pieces every outgoing HTTP client shares (health probes, network log
//! sinks): extra trusted CAs from a PEM file and configured extra headers.

use std::collections::BTreeMap;
use std::path::Path;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Adds every certificate of the PEM bundle at `path` as a trusted root.
pub fn with_ca_file(
    mut builder: reqwest::ClientBuilder,
    path: &Path,
) -> Result<reqwest::ClientBuilder, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{} holds no usable PEM certificate: {e}", path.display()))?;
    for cert in certs {
        builder = builder.add_root_certificate(cert);
    }
    Ok(builder)
}

/// The configured extra headers as a header map; an invalid name or value
/// is an error naming what is wrong.
pub fn header_map(headers: &BTreeMap<String, String>) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
        let value = HeaderValue::from_str(value).map_err(|e| e.to_string())?;
        map.insert(name, value);
    }
    Ok(map)
}

/// Standard base64 with padding, as `Authorization: Basic` carries it.
pub fn base64(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}
