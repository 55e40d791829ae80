//! Runs a [`Collector`] on its interval until shutdown, recording
//! `sidewatch_collector_up`, `sidewatch_collector_duration_seconds`,
//! `sidewatch_collector_errors_total` and its `/status` entry.

use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rand::Rng;
use std::sync::atomic::AtomicU64;
use tokio_util::sync::CancellationToken;

use super::{CollectError, Collector};
use crate::admin::status::{RunOutcome, StatusBoard};

/// The share of the interval by which each wait is randomly shifted, so
/// collectors (and sidecars in many pods) do not all run at the same instant.
const JITTER_FRACTION: f64 = 0.1;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CollectorLabels {
    collector: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ErrorLabels {
    collector: String,
    reason: String,
}

/// sidewatch's metrics about its own collectors.
#[derive(Debug, Clone)]
pub struct CollectorMetrics {
    up: Family<CollectorLabels, Gauge>,
    duration: Family<CollectorLabels, Gauge<f64, AtomicU64>>,
    errors: Family<ErrorLabels, Counter>,
}

impl CollectorMetrics {
    /// Registers the `sidewatch_collector_*` families.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            up: Family::default(),
            duration: Family::default(),
            errors: Family::default(),
        };
        registry.register(
            "sidewatch_collector_up",
            "Whether the collector's last run succeeded (1) or failed (0)",
            metrics.up.clone(),
        );
        registry.register(
            "sidewatch_collector_duration_seconds",
            "Duration of the collector's last run in seconds",
            metrics.duration.clone(),
        );
        registry.register(
            "sidewatch_collector_errors",
            "Failed collector runs by reason",
            metrics.errors.clone(),
        );
        metrics
    }
}

impl CollectorMetrics {
    /// Drops the `up` and `duration` series of `collector` (removed by a
    /// reload); its error counters stay until restart.
    pub fn forget(&self, collector: &str) {
        let labels = CollectorLabels {
            collector: collector.to_owned(),
        };
        self.up.remove(&labels);
        self.duration.remove(&labels);
    }
}

/// Runs `collector` until `stop` is cancelled. The first run starts after a
/// short random delay; later runs every `interval` ± 10 %.
pub async fn run<C: Collector>(
    mut collector: C,
    metrics: CollectorMetrics,
    status: StatusBoard,
    stop: CancellationToken,
) {
    let name = collector.name().to_owned();
    let labels = CollectorLabels {
        collector: name.clone(),
    };
    let up = metrics.up.get_or_create_owned(&labels);
    let duration_gauge = metrics.duration.get_or_create_owned(&labels);
    status.register(&name, collector.kind());
    let interval = collector.interval();
    let first_delay = jittered(interval.min(Duration::from_secs(2)) / 4, 1.0);
    if sleep_or_stop(first_delay, &stop).await {
        return;
    }
    loop {
        let started = Instant::now();
        let run = tokio::time::timeout(collector.timeout(), collector.collect());
        let result = tokio::select! {
            result = run => result.unwrap_or_else(|_| Err(CollectError::new(
                "timeout",
                format!("run took longer than {:?}", collector.timeout()),
            ))),
            () = stop.cancelled() => return,
        };
        let elapsed = started.elapsed();
        duration_gauge.set(elapsed.as_secs_f64());
        match result {
            Ok(collected) => {
                up.set(1);
                status.record(
                    &name,
                    elapsed,
                    RunOutcome::Ok {
                        degraded: collected.degraded,
                        details: collected.details,
                    },
                );
            }
            Err(error) => {
                up.set(0);
                metrics
                    .errors
                    .get_or_create_owned(&ErrorLabels {
                        collector: name.clone(),
                        reason: error.reason.to_owned(),
                    })
                    .inc();
                tracing::debug!(collector = %name, reason = error.reason, message = %error.message, "collector run failed");
                status.record(
                    &name,
                    elapsed,
                    RunOutcome::Failed {
                        reason: error.reason,
                        message: error.message,
                        details: error.details,
                    },
                );
            }
        }
        let wait = jittered(interval, JITTER_FRACTION).saturating_sub(started.elapsed());
        if sleep_or_stop(wait, &stop).await {
            return;
        }
    }
}

/// `base` shifted by a random amount within ± `fraction` of it (for
/// `fraction == 1.0`: anywhere in `0..=2*base`).
fn jittered(base: Duration, fraction: f64) -> Duration {
    let factor = 1.0 + rand::rng().random_range(-fraction..=fraction);
    base.mul_f64(factor.max(0.0))
}

/// Sleeps for `duration`; returns true if `stop` fired first.
async fn sleep_or_stop(duration: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => false,
        () = stop.cancelled() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::Collected;

    struct Flaky {
        runs: u32,
    }

    impl Collector for Flaky {
        fn name(&self) -> &str {
            "flaky"
        }
        fn kind(&self) -> &'static str {
            "test"
        }
        fn interval(&self) -> Duration {
            Duration::from_millis(10)
        }
        fn timeout(&self) -> Duration {
            Duration::from_millis(50)
        }
        async fn collect(&mut self) -> Result<Collected, CollectError> {
            self.runs += 1;
            match self.runs {
                1 => Err(CollectError::new("connect", "refused")),
                2 => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Ok(Collected::default())
                }
                _ => Ok(Collected::default()),
            }
        }
    }

    #[tokio::test]
    async fn records_failures_timeouts_and_recovery() {
        let mut registry = Registry::default();
        let metrics = CollectorMetrics::register(&mut registry);
        let status = StatusBoard::default();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            Flaky { runs: 0 },
            metrics.clone(),
            status.clone(),
            stop.clone(),
        ));
        let deadline = Instant::now() + Duration::from_secs(5);
        while status.get("flaky").map_or(0, |s| s.runs) < 3 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
        task.await.unwrap();
        let entry = status.get("flaky").unwrap();
        assert!(entry.runs >= 3);
        assert_eq!(entry.up, Some(true));
        assert_eq!(entry.last_error_reason.as_deref(), Some("timeout"));
        let errors = |reason: &str| {
            metrics
                .errors
                .get_or_create_owned(&ErrorLabels {
                    collector: "flaky".into(),
                    reason: reason.into(),
                })
                .get()
        };
        assert_eq!((errors("connect"), errors("timeout")), (1, 1));
    }
}
