//! Building the network sinks (Loki, HTTP) from their config.

use std::path::Path;

use super::delivery::dead_letter::DeadLetter;
use super::delivery::{client::Endpoint, DeliveryFamilies, NetworkSink, Parts};
use super::{launch, Launch, SinkReport};
use crate::config::logs::{LogSinkConfig, SinkKind};

/// A problem building a network sink: the key (below the sink's) and what.
pub type BuildError = (&'static str, String);

/// Builds a `loki` or `http` sink; `state_dir` holds the default dead-letter file.
pub fn build(
    config: &LogSinkConfig,
    state_dir: &Path,
    report: SinkReport,
    families: &DeliveryFamilies,
) -> Result<Launch, BuildError> {
    let Some(url) = &config.url else {
        return Err(("url", "must be set".into()));
    };
    let url = match config.kind {
        SinkKind::Loki => super::loki::push_url(url),
        _ => url.clone(),
    };
    let endpoint = Endpoint::build(config, url).map_err(|e| ("url", e))?;
    let dead_letter_path = match &config.delivery.dead_letter_path {
        Some(path) => path.clone(),
        None => state_dir.join(format!("dead-letter-{}.jsonl", report.name)),
    };
    DeadLetter::check(&dead_letter_path).map_err(|e| {
        (
            "delivery.dead_letter_path",
            format!("cannot write {}: {e}", dead_letter_path.display()),
        )
    })?;
    let parts = Parts {
        endpoint,
        config: config.delivery.clone(),
        metrics: families.sink(&report.name),
        dead_letter: DeadLetter::new(&report.name, &dead_letter_path),
        report: report.clone(),
    };
    Ok(match config.kind {
        SinkKind::Loki => launch(
            NetworkSink::new(super::loki::LokiEncoder::new(config), parts),
            report,
        ),
        _ => launch(
            NetworkSink::new(
                super::http::NdjsonEncoder {
                    compression: config.compression,
                },
                parts,
            ),
            report,
        ),
    })
}
