//! Every alert sidewatch ships: its SLI key in the spec, default severity,
//! threshold, window and `for` (SLOS.md §1–§2), and its annotations.

use std::time::Duration;

use super::spec::{mins, Severity};

/// The unit of an SLI's threshold in the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Seconds (latency).
    Seconds,
    /// Percent (compared as `value > threshold / 100`).
    Percent,
    /// A plain number (waiting requests, restarts, events per second).
    Count,
}

/// One alert's defaults and texts. In `summary` and `description`,
/// `<threshold>`, `<window>` and `<for>` stand for the resolved values.
#[derive(Debug)]
pub struct Sli {
    /// Key under `alerts:` in the spec.
    pub key: &'static str,
    /// The alert name (and runbook file name).
    pub alert: &'static str,
    /// Default severity.
    pub severity: Severity,
    /// Default threshold; `None` for alerts without one (`up == 0`).
    pub threshold: Option<f64>,
    /// The threshold's unit.
    pub unit: Unit,
    /// Default rate window; `None` for alerts on gauges.
    pub window: Option<Duration>,
    /// Default `for`.
    pub r#for: Duration,
    /// One-line summary (Prometheus template).
    pub summary: &'static str,
    /// Description with humanised values (Prometheus template).
    pub description: &'static str,
}

/// An entry: `(threshold, unit)`, `(window, for)`, `(summary, description)`.
const fn sli(
    key: &'static str,
    alert: &'static str,
    severity: Severity,
    (threshold, unit): (Option<f64>, Unit),
    (window, r#for): (Option<Duration>, Duration),
    (summary, description): (&'static str, &'static str),
) -> Sli {
    Sli {
        key,
        alert,
        severity,
        threshold,
        unit,
        window,
        r#for,
        summary,
        description,
    }
}

use Severity::{Critical, Warning};
use Unit::{Count, Percent, Seconds};

const W5: Option<Duration> = Some(mins(5));

/// The catalog, in the order the alerts are written.
pub const SLIS: &[Sli] = &[
    sli("availability_low", "AvailabilityLow", Warning, (Some(99.5), Percent), (Some(super::spec::hours(24)), mins(5)),
        ("Availability of {{ $labels.namespace }}/{{ $labels.job }} is below <threshold>% over <window>",
        "Only {{ $value | humanizePercentage }} of the requests of {{ $labels.namespace }}/{{ $labels.job }} succeeded (non-5xx) over the last <window>; the alert threshold is <threshold>%.")),
    sli("latency_p95", "LatencyP95High", Warning, (Some(2.0), Seconds), (W5, mins(5)),
        ("p95 latency of {{ $labels.namespace }}/{{ $labels.job }} is above <threshold>s",
        "The 95th percentile request latency of {{ $labels.namespace }}/{{ $labels.job }} is {{ $value | humanizeDuration }} (over <window>), above <threshold>s for <for>.")),
    sli("latency_p99", "LatencyP99High", Critical, (Some(5.0), Seconds), (W5, mins(2)),
        ("p99 latency of {{ $labels.namespace }}/{{ $labels.job }} is above <threshold>s",
        "The 99th percentile request latency of {{ $labels.namespace }}/{{ $labels.job }} is {{ $value | humanizeDuration }} (over <window>), above <threshold>s for <for>.")),
    sli("errors_5xx", "HighServerErrorRate", Critical, (Some(5.0), Percent), (W5, mins(5)),
        ("5xx share of {{ $labels.namespace }}/{{ $labels.job }} is above <threshold>%",
        "{{ $value | humanizePercentage }} of the requests of {{ $labels.namespace }}/{{ $labels.job }} answered 5xx over <window>, above <threshold>% for <for>.")),
    sli("errors_4xx", "HighClientErrorRate", Warning, (Some(20.0), Percent), (W5, mins(5)),
        ("4xx share of {{ $labels.namespace }}/{{ $labels.job }} is above <threshold>%",
        "{{ $value | humanizePercentage }} of the requests of {{ $labels.namespace }}/{{ $labels.job }} answered 4xx over <window>, above <threshold>% for <for>.")),
    sli("work_stalled", "WorkStalled", Warning, (None, Count), (Some(mins(2)), mins(2)),
        ("{{ $labels.namespace }}/{{ $labels.job }} receives work but processes none",
        "{{ $labels.namespace }}/{{ $labels.job }} received {{ $value | humanize }} units of work over <window> and processed none, for <for>.")),
    sli("service_down", "ServiceDown", Critical, (None, Count), (None, mins(1)),
        ("Scrape target {{ $labels.job }} {{ $labels.pod }} is down",
        "Prometheus cannot scrape {{ $labels.instance }} (job {{ $labels.job }}, pod {{ $labels.namespace }}/{{ $labels.pod }}) for <for>.")),
    sli("health_check", "AppHealthCheckFailing", Critical, (None, Count), (None, mins(1)),
        ("Health check {{ $labels.target }}{{ with $labels.check }}/{{ . }}{{ end }} of {{ $labels.namespace }}/{{ $labels.pod }} is failing",
        "sidewatch's probe of {{ $labels.target }}{{ with $labels.check }} reports check {{ . }} failing{{ else }} fails{{ end }} in pod {{ $labels.namespace }}/{{ $labels.pod }}, for <for>.")),
    sli("postgres_down", "PostgresDown", Critical, (None, Count), (None, mins(1)),
        ("PostgreSQL {{ $labels.server }} is unreachable from {{ $labels.namespace }}/{{ $labels.pod }}",
        "sidewatch in pod {{ $labels.namespace }}/{{ $labels.pod }} has not been able to collect from PostgreSQL server {{ $labels.server }} for <for>.")),
    sli("redis_down", "RedisDown", Critical, (None, Count), (None, mins(1)),
        ("Redis {{ $labels.server }} is unreachable from {{ $labels.namespace }}/{{ $labels.pod }}",
        "sidewatch in pod {{ $labels.namespace }}/{{ $labels.pod }} has not been able to collect from Redis server {{ $labels.server }} for <for>.")),
    sli("postgres_connections", "PostgresConnectionsHigh", Warning, (Some(80.0), Percent), (None, mins(5)),
        ("PostgreSQL {{ $labels.server }} connections are above <threshold>% of max_connections",
        "PostgreSQL server {{ $labels.server }} (seen from {{ $labels.namespace }}/{{ $labels.job }}) uses {{ $value | humanizePercentage }} of max_connections, above <threshold>% for <for>.")),
    sli("redis_clients", "RedisClientsHigh", Warning, (Some(80.0), Percent), (None, mins(5)),
        ("Redis {{ $labels.server }} clients are above <threshold>% of maxclients",
        "Redis server {{ $labels.server }} (seen from {{ $labels.namespace }}/{{ $labels.job }}) has {{ $value | humanizePercentage }} of maxclients connected, above <threshold>% for <for>.")),
    sli("pool_in_use", "AppPoolSaturated", Warning, (Some(80.0), Percent), (None, mins(5)),
        ("Connection pool {{ $labels.pool_name }} of {{ $labels.namespace }}/{{ $labels.pod }} is above <threshold>% in use",
        "The app's pool {{ $labels.pool_name }} (source {{ $labels.source }}) in pod {{ $labels.namespace }}/{{ $labels.pod }} has {{ $value | humanizePercentage }} of its connections in use, above <threshold>% for <for>.")),
    sli("pool_waiters", "AppPoolWaiters", Warning, (Some(0.0), Count), (None, mins(5)),
        ("Requests wait for a connection from pool {{ $labels.pool_name }} of {{ $labels.namespace }}/{{ $labels.pod }}",
        "{{ $value | humanize }} requests are waiting for a connection from the app's pool {{ $labels.pool_name }} (source {{ $labels.source }}) in pod {{ $labels.namespace }}/{{ $labels.pod }}, more than <threshold> for <for>.")),
    sli("cpu", "ContainerCpuHigh", Warning, (Some(80.0), Percent), (W5, mins(5)),
        ("CPU of {{ $labels.namespace }}/{{ $labels.pod }} is above <threshold>% of its limit",
        "The app container in pod {{ $labels.namespace }}/{{ $labels.pod }} uses {{ $value | humanizePercentage }} of its CPU limit (over <window>), above <threshold>% for <for>.")),
    sli("memory", "ContainerMemoryHigh", Warning, (Some(85.0), Percent), (None, mins(5)),
        ("Memory of {{ $labels.namespace }}/{{ $labels.pod }} is above <threshold>% of its limit",
        "The app container in pod {{ $labels.namespace }}/{{ $labels.pod }} uses {{ $value | humanizePercentage }} of its memory limit, above <threshold>% for <for>.")),
    sli("crash_looping", "PodCrashLooping", Warning, (Some(2.0), Count), (Some(mins(10)), mins(1)),
        ("{{ $labels.namespace }}/{{ $labels.pod }} is restarting repeatedly",
        "The app in pod {{ $labels.namespace }}/{{ $labels.pod }} restarted {{ $value | printf \"%.0f\" }} times over <window>, more than <threshold>.")),
    sli("sink_failing", "SidewatchSinkFailing", Warning, (Some(0.0), Count), (W5, mins(5)),
        ("sidewatch log sink {{ $labels.sink }} in {{ $labels.namespace }}/{{ $labels.pod }} is failing",
        "Log sink {{ $labels.sink }} of sidewatch in pod {{ $labels.namespace }}/{{ $labels.pod }} fails to deliver {{ $value | printf \"%.3g\" }} events/s (over <window>) for <for>.")),
    sli("events_dropped", "SidewatchEventsDropped", Warning, (Some(0.0), Count), (W5, mins(5)),
        ("sidewatch in {{ $labels.namespace }}/{{ $labels.pod }} is dropping log events",
        "sidewatch in pod {{ $labels.namespace }}/{{ $labels.pod }} drops or dead-letters {{ $value | printf \"%.3g\" }} log events/s (over <window>) for <for>, beyond deliberate filtering.")),
    sli("buffer_full", "SidewatchBufferNearFull", Warning, (Some(80.0), Percent), (None, mins(5)),
        ("sidewatch disk buffer of sink {{ $labels.sink }} in {{ $labels.namespace }}/{{ $labels.pod }} is above <threshold>% full",
        "The disk buffer of log sink {{ $labels.sink }} in pod {{ $labels.namespace }}/{{ $labels.pod }} is {{ $value | humanizePercentage }} full, above <threshold>% for <for>.")),
    sli("label_overflow", "SidewatchLabelOverflow", Warning, (Some(0.0), Count), (W5, mins(5)),
        ("sidewatch metric {{ $labels.metric }} in {{ $labels.namespace }}/{{ $labels.pod }} overflows its label cap",
        "Metric {{ $labels.metric }} of sidewatch in pod {{ $labels.namespace }}/{{ $labels.pod }} folds {{ $value | printf \"%.3g\" }} new label sets/s into __overflow__ (over <window>) for <for>.")),
    sli("collector_failing", "SidewatchCollectorFailing", Warning, (None, Count), (None, mins(5)),
        ("sidewatch collector {{ $labels.collector }} in {{ $labels.namespace }}/{{ $labels.pod }} is failing",
        "Collector {{ $labels.collector }} of sidewatch in pod {{ $labels.namespace }}/{{ $labels.pod }} has failed every run for <for>; see /status for its reason.")),
];

/// Summary and description of the burn-rate alerts (`<objective>`,
/// `<window>` = the SLO window; `$value` is the long window's burn rate).
pub const BURN_SUMMARY: &str =
    "{{ $labels.namespace }}/{{ $labels.job }} burns its <objective>% availability error budget too fast";
/// See [`BURN_SUMMARY`].
pub const BURN_DESCRIPTION: &str = "{{ $labels.namespace }}/{{ $labels.job }} spends its <window> error budget (objective <objective>%) at {{ $value | humanize }} times the sustainable rate (<pairs>).";

/// Looks an SLI up by its spec key.
pub fn find(key: &str) -> Option<&'static Sli> {
    SLIS.iter().find(|s| s.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_alert_names_are_unique() {
        let mut keys: Vec<_> = SLIS.iter().map(|s| s.key).collect();
        let mut alerts: Vec<_> = SLIS.iter().map(|s| s.alert).collect();
        keys.sort();
        keys.dedup();
        alerts.sort();
        alerts.dedup();
        assert_eq!(keys.len(), SLIS.len());
        assert_eq!(alerts.len(), SLIS.len());
    }
}
