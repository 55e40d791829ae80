//! The health probe collector: one per configured target, HTTP(S) or TCP.
//!
//! Metrics: `sidewatch_target_up{target}`, `sidewatch_probe_duration_seconds{target}`,
//! `sidewatch_probe_failures_total{target,reason}` and
//! `sidewatch_health_check_up{target,check}` for JSON health bodies.

pub mod checks;
mod probe;
mod status;

pub use probe::{Probe, Reason};
pub use status::StatusSet;

use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::json;

use super::{CollectError, Collected, Collector};
use crate::config::HealthTarget;
use crate::telemetry::snapshot::{Kind, SnapshotFamily};

/// Probe latency buckets in seconds; the SLO thresholds (0.5, 1, 2, 5 s) are exact bounds.
pub const PROBE_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FailureLabels {
    target: String,
    reason: &'static str,
}

/// The metric families every health target writes to.
#[derive(Debug, Clone)]
pub struct HealthMetrics {
    up: Family<TargetLabels, Gauge>,
    duration: Family<TargetLabels, Histogram>,
    failures: Family<FailureLabels, Counter>,
    checks: SnapshotFamily,
}

impl HealthMetrics {
    /// Registers the health families.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            up: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(PROBE_BUCKETS)),
            failures: Family::default(),
            checks: SnapshotFamily::register(
                registry,
                "sidewatch_health_check_up",
                "Whether a check reported in the target's JSON health body passes (1) or fails (0).",
                Kind::Gauge,
            ),
        };
        registry.register(
            "sidewatch_target_up",
            "Whether the target's last probe succeeded (1) or failed (0)",
            metrics.up.clone(),
        );
        registry.register(
            "sidewatch_probe_duration_seconds",
            "Duration of health probes, connection to last body byte read",
            metrics.duration.clone(),
        );
        registry.register(
            "sidewatch_probe_failures",
            "Failed health probes by reason (timeout, connect, status, body, tls)",
            metrics.failures.clone(),
        );
        metrics
    }
}

impl HealthMetrics {
    /// Drops every series of `target` (a target removed by a reload).
    pub fn forget(&self, target: &str) {
        let labels = TargetLabels {
            target: target.to_owned(),
        };
        self.up.remove(&labels);
        self.duration.remove(&labels);
        for reason in Reason::ALL {
            self.failures.remove(&FailureLabels {
                target: target.to_owned(),
                reason: reason.as_str(),
            });
        }
        self.checks.set(target, Vec::new());
    }
}

/// Probes one target on its interval.
#[derive(Debug)]
pub struct HealthCollector {
    name: String,
    target: String,
    probe: Probe,
    timeout: Duration,
    interval: Duration,
    up: Gauge,
    duration: Histogram,
    failures: Vec<(Reason, Counter)>,
    checks: SnapshotFamily,
}

impl HealthCollector {
    /// Builds the collector for a validated target.
    pub fn build(target: &HealthTarget, metrics: &HealthMetrics) -> Result<Self, String> {
        let labels = TargetLabels {
            target: target.name.clone(),
        };
        let failures = Reason::ALL
            .iter()
            .map(|reason| {
                let labels = FailureLabels {
                    target: target.name.clone(),
                    reason: reason.as_str(),
                };
                (*reason, metrics.failures.get_or_create_owned(&labels))
            })
            .collect();
        Ok(Self {
            name: format!("health/{}", target.name),
            target: target.name.clone(),
            probe: Probe::build(target)?,
            timeout: target.timeout,
            interval: target.interval,
            up: metrics.up.get_or_create_owned(&labels),
            duration: metrics.duration.get_or_create_owned(&labels),
            failures,
            checks: metrics.checks.clone(),
        })
    }

    /// The target's name (the `target` label).
    pub fn target(&self) -> &str {
        &self.target
    }
}

impl Collector for HealthCollector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "health"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn timeout(&self) -> Duration {
        // The probe bounds itself; this only guards against a bug there.
        self.timeout + Duration::from_secs(1)
    }

    async fn collect(&mut self) -> Result<Collected, CollectError> {
        let started = Instant::now();
        let outcome = self.probe.run(self.timeout).await;
        self.duration.observe(started.elapsed().as_secs_f64());

        let body = outcome.body.unwrap_or_default();
        let samples = body
            .checks
            .iter()
            .map(|(check, passing)| {
                let labels = vec![
                    ("target".to_owned(), self.target.clone()),
                    ("check".to_owned(), check.clone()),
                ];
                (labels, if *passing { 1.0 } else { 0.0 })
            })
            .collect();
        self.checks.set(&self.target, samples);
        let check_details: serde_json::Map<_, _> = body
            .checks
            .iter()
            .map(|(check, passing)| (check.clone(), json!(if *passing { "pass" } else { "fail" })))
            .collect();
        let details = json!({
            "target": self.probe.describe(),
            "status_code": outcome.status_code,
            "checks": check_details,
            "checks_omitted": body.omitted,
        });

        match outcome.failure {
            None => {
                self.up.set(1);
                Ok(Collected {
                    degraded: None,
                    details,
                })
            }
            Some(failure) => {
                self.up.set(0);
                if let Some((_, counter)) = self.failures.iter().find(|(r, _)| *r == failure.reason)
                {
                    counter.inc();
                }
                Err(CollectError {
                    reason: failure.reason.as_str(),
                    message: failure.message,
                    details,
                })
            }
        }
    }
}
