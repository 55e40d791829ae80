//! The `otlp` sink: log records (see [`crate::otlp::logs`]) sent with the
//! `[otlp]` transport (HTTP/protobuf or gRPC) through the shared delivery
//! machinery, so batching, retries with backoff, the disk buffer, dead
//! letters and acknowledgements are the Loki and HTTP sinks' own. A
//! partial-success answer acknowledges the batch (the OTLP spec forbids
//! retrying it) and its rejected records are counted and shown in `/status`.

use std::path::Path;

use super::delivery::{DeliveryFamilies, NetworkSink};
use super::network::{launch, parts, BuildError};
use super::{Launch, SinkReport};
use crate::config::logs::LogSinkConfig;
use crate::otlp::logs::LogEncoder;
use crate::otlp::transport::LogsTransport;
use crate::otlp::Otlp;

/// Builds an `otlp` sink sending through `otlp`'s client.
pub fn build(
    config: &LogSinkConfig,
    message_field: &str,
    state_dir: &Path,
    report: SinkReport,
    families: &DeliveryFamilies,
    otlp: &Otlp,
) -> Result<Launch, BuildError> {
    let transport = Box::new(LogsTransport(otlp.client.clone()));
    let parts = parts(config, state_dir, report.clone(), families, transport)?;
    let encoder = LogEncoder::new(
        otlp.resource.clone(),
        message_field,
        &config.timestamp_fields,
    );
    Ok(launch(NetworkSink::new(encoder, parts), report))
}
