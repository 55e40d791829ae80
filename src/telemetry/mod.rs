//! The metrics registry root and what hangs off it directly: exposition
//! formats, snapshot families, sidewatch's build info and process metrics,
//! reserved family names, route normalisation and the cardinality cap.

pub mod cardinality;
pub mod expfmt;
pub mod names;
pub mod parts;
pub mod process;
pub mod route;
pub mod snapshot;

use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// sidewatch's version, from Cargo.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision sidewatch was built from, or `unknown`.
pub const REVISION: &str = env!("SIDEWATCH_REVISION");

/// Creates the one registry every component registers on, holding
/// `sidewatch_build_info{version,revision}`.
pub fn new_registry() -> Registry {
    let mut registry = Registry::default();
    registry.register(
        "sidewatch_build",
        "sidewatch build information; the value is always 1",
        Info::new(vec![
            ("version".to_owned(), VERSION.to_owned()),
            ("revision".to_owned(), REVISION.to_owned()),
        ]),
    );
    registry
}

/// Encodes the whole registry in the requested exposition format.
pub fn encode(
    registry: &Registry,
    format: expfmt::Exposition,
    size_hint: usize,
) -> Result<String, std::fmt::Error> {
    let mut openmetrics = String::with_capacity(size_hint);
    prometheus_client::encoding::text::encode(&mut openmetrics, registry)?;
    Ok(convert(openmetrics, format))
}

/// Encodes every part of `registries` in the requested exposition format.
pub fn encode_parts(
    registries: &parts::Registries,
    format: expfmt::Exposition,
    size_hint: usize,
) -> Result<String, std::fmt::Error> {
    let mut openmetrics = String::with_capacity(size_hint);
    registries.encode_openmetrics(&mut openmetrics)?;
    Ok(convert(openmetrics, format))
}

fn convert(openmetrics: String, format: expfmt::Exposition) -> String {
    match format {
        expfmt::Exposition::OpenMetrics => openmetrics,
        expfmt::Exposition::Prometheus => {
            let mut text = String::with_capacity(openmetrics.len());
            expfmt::openmetrics_to_prometheus(&openmetrics, &mut text);
            text
        }
    }
}
