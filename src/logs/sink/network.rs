//! Building the network sinks (Loki, HTTP; the parts OTLP shares) from their config.

use std::path::Path;

use super::delivery::client::{Endpoint, Transport};
use super::delivery::dead_letter::DeadLetter;
use super::delivery::disk::DiskBuffer;
use super::delivery::Encode;
use super::delivery::{DeliveryFamilies, NetworkSink, Parts};
use super::{drive, Launch, SinkReport};
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
    let parts = parts(
        config,
        state_dir,
        report.clone(),
        families,
        Box::new(endpoint),
    )?;
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

/// What every network sink is built from besides its encoder: the
/// dead-letter file, the disk buffer (events of an earlier run recovered)
/// and the delivery metrics, around `endpoint`.
pub(super) fn parts(
    config: &LogSinkConfig,
    state_dir: &Path,
    report: SinkReport,
    families: &DeliveryFamilies,
    endpoint: Box<dyn Transport>,
) -> Result<Parts, BuildError> {
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
    let disk = if config.delivery.disk_buffer_max_bytes > 0 {
        let dir = match &config.delivery.disk_buffer_path {
            Some(path) => path.clone(),
            None => state_dir.join(format!("buffer-{}", report.name)),
        };
        let (disk, recovered) = DiskBuffer::open(&dir, config.delivery.disk_buffer_max_bytes)
            .map_err(|e| {
                (
                    "delivery.disk_buffer_path",
                    format!("cannot use {} as a disk buffer: {e}", dir.display()),
                )
            })?;
        if recovered.records > 0 || recovered.corrupt_tails > 0 {
            tracing::info!(sink = %report.name, records = recovered.records, delivered = recovered.delivered, corrupt_tails = recovered.corrupt_tails, corrupt_bytes = recovered.corrupt_bytes, "disk buffer holds events from an earlier run");
        }
        Some((disk, recovered))
    } else {
        None
    };
    let metrics = families.sink(&report.name);
    if let Some((_, recovered)) = &disk {
        metrics.corrupt_tails.inc_by(recovered.corrupt_tails);
    }
    Ok(Parts {
        endpoint,
        config: config.delivery.clone(),
        metrics,
        dead_letter: DeadLetter::new(&report.name, &dead_letter_path),
        disk: disk.map(|(disk, _)| disk),
        report,
    })
}

/// Like [`super::launch`], but starts the batcher before the first write so
/// a disk buffer left by an earlier run drains at once.
pub(super) fn launch<E: Encode>(mut sink: NetworkSink<E>, report: SinkReport) -> Launch {
    report.status.register_sink(&report.name);
    Box::new(move |queue, abort| {
        Box::pin(async move {
            sink.start();
            drive(sink, report, queue, abort).await;
        })
    })
}
