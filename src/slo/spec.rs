//! The SLO spec (`alert-rules/slos.yaml`): objectives, thresholds, windows and
//! metric names; every field has the default SLOS.md gives it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// The whole spec.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    /// Extra PromQL label matchers added to every selector, e.g. `namespace="chat"`.
    pub selector: String,
    /// Base URL of the runbooks; `runbook_url` is `<this>/<AlertName>.md`.
    pub runbook_base_url: String,
    /// Names of the request metric families.
    pub requests: Requests,
    /// Optional business-work counters; "work stalled" is generated only when set.
    pub business: Option<Business>,
    /// Where CPU, memory and restart series come from.
    pub resources: Resources,
    /// The availability objective and its burn-rate alerts.
    pub availability: Availability,
    /// Per-alert overrides by SLI key (see [`super::catalog::SLIS`]).
    pub alerts: BTreeMap<String, AlertSpec>,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            selector: String::new(),
            runbook_base_url: "https://github.com/sidewatch/sidewatch/blob/main/docs/runbooks"
                .into(),
            requests: Requests::default(),
            business: None,
            resources: Resources::Cadvisor,
            availability: Availability::default(),
            alerts: BTreeMap::new(),
        }
    }
}

/// Request (RED) metric family names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Requests {
    /// The request counter (labels `status`, `route`, `method`).
    pub total: String,
    /// The request-duration histogram, in seconds (without `_bucket`).
    pub duration: String,
    /// The label holding the HTTP status code.
    pub status_label: String,
}

impl Default for Requests {
    fn default() -> Self {
        Self {
            total: "http_requests_total".into(),
            duration: "http_request_duration_seconds".into(),
            status_label: "status".into(),
        }
    }
}

/// The counters of received and processed units of work.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Business {
    /// Counter of work received (e.g. `chat_messages_received_total`).
    pub received: String,
    /// Counter of work processed (e.g. `chat_messages_processed_total`).
    pub processed: String,
}

/// The source of container resource series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resources {
    /// cAdvisor + kube-state-metrics (`container_*`, `kube_pod_container_*`).
    Cadvisor,
    /// sidewatch's own `app_process_*` and `app_container_*_limit_*`.
    Sidewatch,
}

/// Alert severity (DESIGN.md: `critical` pages, `warning` tickets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Pages.
    Critical,
    /// Tickets.
    Warning,
}

impl Severity {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
        }
    }
}

/// The availability SLO (non-5xx share of requests).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Availability {
    /// Objective in percent (99.9).
    pub objective: f64,
    /// Compliance window (30d).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// The paging burn-rate alert (`AvailabilityFastBurn`).
    pub fast_burn: BurnAlert,
    /// The ticketing burn-rate alert (`AvailabilitySlowBurn`).
    pub slow_burn: BurnAlert,
}

impl Default for Availability {
    fn default() -> Self {
        Self {
            objective: 99.9,
            window: days(30),
            fast_burn: BurnAlert {
                severity: Severity::Critical,
                r#for: mins(2),
                windows: vec![
                    BurnWindow::new(hours(1), mins(5), 14.4),
                    BurnWindow::new(hours(6), mins(30), 6.0),
                ],
            },
            slow_burn: BurnAlert {
                severity: Severity::Warning,
                r#for: mins(15),
                windows: vec![
                    BurnWindow::new(days(1), hours(2), 3.0),
                    BurnWindow::new(days(3), hours(6), 1.0),
                ],
            },
        }
    }
}

/// One multi-window burn-rate alert: fires when any window pair burns too fast.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurnAlert {
    /// Its severity.
    pub severity: Severity,
    /// How long the condition must hold.
    #[serde(rename = "for", with = "humantime_serde")]
    pub r#for: Duration,
    /// Window pairs; both windows must exceed `factor × (1 − objective)`.
    pub windows: Vec<BurnWindow>,
}

/// A long/short window pair with its burn-rate factor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurnWindow {
    /// The long window (1h).
    #[serde(with = "humantime_serde")]
    pub long: Duration,
    /// The short window (5m); must be shorter than `long`.
    #[serde(with = "humantime_serde")]
    pub short: Duration,
    /// The burn rate (14.4).
    pub factor: f64,
}

impl BurnWindow {
    fn new(long: Duration, short: Duration, factor: f64) -> Self {
        Self {
            long,
            short,
            factor,
        }
    }
}

/// Overrides for one alert; unset fields keep the catalog's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSpec {
    /// `false` leaves the alert out.
    pub enabled: Option<bool>,
    /// The threshold, in the SLI's unit (seconds, percent, count).
    pub threshold: Option<f64>,
    /// Range of the rate/increase the alert looks at.
    #[serde(default, with = "humantime_serde")]
    pub window: Option<Duration>,
    /// How long the condition must hold.
    #[serde(default, rename = "for", with = "humantime_serde")]
    pub r#for: Option<Duration>,
    /// Its severity.
    pub severity: Option<Severity>,
}

/// `n` minutes.
pub const fn mins(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}
/// `n` hours.
pub const fn hours(n: u64) -> Duration {
    Duration::from_secs(n * 3600)
}
/// `n` days.
pub const fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86400)
}

/// A duration in Prometheus syntax, in the largest unit that divides it (`5m`, `30d`).
pub fn prom_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms > 0 && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_the_largest_unit() {
        assert_eq!(prom_duration(mins(5)), "5m");
        assert_eq!(prom_duration(days(30)), "30d");
        assert_eq!(prom_duration(hours(24)), "1d");
        assert_eq!(prom_duration(Duration::from_secs(90)), "90s");
        assert_eq!(prom_duration(Duration::from_millis(1500)), "1500ms");
    }
}
