//! Loading and checking the spec: every problem is reported with its field,
//! and the per-alert overrides are merged over the catalog's defaults.

use std::path::Path;
use std::time::Duration;

use super::catalog::{self, Sli, Unit};
use super::spec::{prom_duration, BurnAlert, Severity, Spec};
use crate::config::{ConfigError, ConfigErrors};

/// One alert with the spec's overrides applied.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Its catalog entry.
    pub sli: &'static Sli,
    /// Severity label.
    pub severity: Severity,
    /// Threshold in the SLI's unit.
    pub threshold: Option<f64>,
    /// Rate window.
    pub window: Option<Duration>,
    /// `for`.
    pub r#for: Duration,
}

/// Reads and checks the spec at `path`.
pub fn load(path: &Path) -> Result<(Spec, Vec<Resolved>), ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors::one("", format!("cannot read {}: {e}", path.display())))?;
    parse(&text)
}

/// Parses and checks spec text (YAML).
pub fn parse(text: &str) -> Result<(Spec, Vec<Resolved>), ConfigErrors> {
    let source = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Yaml))
        .build()
        .map_err(|e| ConfigErrors::one("", format!("cannot parse the SLO spec: {e}")))?;
    let spec: Spec = serde_path_to_error::deserialize(source).map_err(|e| {
        let key = e.path().to_string();
        ConfigErrors::one(
            if key == "." { "" } else { &key },
            e.into_inner().to_string(),
        )
    })?;
    let mut errors = Vec::new();
    let mut push = |key: String, message: String| errors.push(ConfigError { key, message });
    check_availability(&spec, &mut push);
    let mut resolved = Vec::new();
    for key in spec.alerts.keys() {
        if catalog::find(key).is_none() {
            let known: Vec<_> = catalog::SLIS.iter().map(|s| s.key).collect();
            push(
                format!("alerts.{key}"),
                format!("unknown SLI; known: {}", known.join(", ")),
            );
        }
    }
    for sli in catalog::SLIS {
        let over = spec.alerts.get(sli.key).cloned().unwrap_or_default();
        let key = format!("alerts.{}", sli.key);
        if over.threshold.is_some() && sli.threshold.is_none() {
            push(
                format!("{key}.threshold"),
                "this alert has no threshold".into(),
            );
        }
        if over.window.is_some() && sli.window.is_none() {
            push(format!("{key}.window"), "this alert has no window".into());
        }
        let r = Resolved {
            sli,
            severity: over.severity.unwrap_or(sli.severity),
            threshold: over.threshold.or(sli.threshold),
            window: over.window.or(sli.window),
            r#for: over.r#for.unwrap_or(sli.r#for),
        };
        if let Some(t) = r.threshold {
            check_threshold(&format!("{key}.threshold"), t, sli.unit, &mut push);
        }
        if let Some(w) = r.window {
            check_window(&key, w, r.r#for, &mut push);
        }
        let wanted =
            over.enabled.unwrap_or(true) && (sli.key != "work_stalled" || spec.business.is_some());
        if wanted {
            resolved.push(r);
        }
    }
    if errors.is_empty() {
        Ok((spec, resolved))
    } else {
        Err(ConfigErrors(errors))
    }
}

fn check_threshold(key: &str, value: f64, unit: Unit, push: &mut impl FnMut(String, String)) {
    if !value.is_finite() || value < 0.0 {
        push(key.into(), format!("must be a number ≥ 0, not {value}"));
    } else if unit == Unit::Percent && value > 100.0 {
        push(
            key.into(),
            format!("a percentage must be at most 100, not {value}"),
        );
    }
}

fn check_window(
    key: &str,
    window: Duration,
    r#for: Duration,
    push: &mut impl FnMut(String, String),
) {
    if window.is_zero() {
        push(format!("{key}.window"), "must be greater than zero".into());
    } else if window < r#for {
        push(
            format!("{key}.window"),
            format!(
                "{} is shorter than its `for` ({})",
                prom_duration(window),
                prom_duration(r#for)
            ),
        );
    }
}

fn check_availability(spec: &Spec, push: &mut impl FnMut(String, String)) {
    let a = &spec.availability;
    if !(a.objective > 0.0 && a.objective < 100.0) {
        push(
            "availability.objective".into(),
            format!(
                "must be a percentage above 0 and below 100, not {}",
                a.objective
            ),
        );
    }
    if a.window.is_zero() {
        push(
            "availability.window".into(),
            "must be greater than zero".into(),
        );
    }
    for (name, burn) in [("fast_burn", &a.fast_burn), ("slow_burn", &a.slow_burn)] {
        check_burn(&format!("availability.{name}"), burn, a.objective, push);
    }
}

fn check_burn(key: &str, burn: &BurnAlert, objective: f64, push: &mut impl FnMut(String, String)) {
    if burn.windows.is_empty() {
        push(
            format!("{key}.windows"),
            "needs at least one window pair".into(),
        );
    }
    for (i, w) in burn.windows.iter().enumerate() {
        let k = format!("{key}.windows[{i}]");
        if !(w.factor.is_finite() && w.factor > 0.0) {
            push(
                format!("{k}.factor"),
                format!("must be above 0, not {}", w.factor),
            );
        } else if w.factor * (100.0 - objective) / 100.0 >= 1.0 {
            push(
                format!("{k}.factor"),
                "factor × (1 − objective) must stay below 1 (the alert could never fire)".into(),
            );
        }
        if w.short.is_zero() || w.short >= w.long {
            push(
                format!("{k}.short"),
                "must be above 0 and shorter than `long`".into(),
            );
        }
        if w.short < burn.r#for {
            push(
                format!("{k}.short"),
                format!(
                    "{} is shorter than its `for` ({})",
                    prom_duration(w.short),
                    prom_duration(burn.r#for)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<String> {
        parse(text)
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.key)
            .collect()
    }

    #[test]
    fn empty_spec_is_all_defaults() {
        let (spec, alerts) = parse("{}").unwrap();
        assert_eq!(spec.availability.objective, 99.9);
        assert!(alerts.iter().all(|a| a.sli.key != "work_stalled"));
        let p95 = alerts.iter().find(|a| a.sli.key == "latency_p95").unwrap();
        assert_eq!(p95.threshold, Some(2.0));
    }

    #[test]
    fn every_bad_field_is_named() {
        let keys = keys(
            "availability: {objective: 100}\nalerts:\n  latency_p95: {threshold: -1}\n  \
             errors_5xx: {window: 1m, for: 5m}\n  bogus: {threshold: 1}\n  service_down: {threshold: 3}\n",
        );
        for expected in [
            "availability.objective",
            "alerts.latency_p95.threshold",
            "alerts.errors_5xx.window",
            "alerts.bogus",
            "alerts.service_down.threshold",
        ] {
            assert!(
                keys.iter().any(|k| k == expected),
                "{expected} not in {keys:?}"
            );
        }
    }

    #[test]
    fn wrong_types_and_unknown_fields_are_named() {
        assert_eq!(
            keys("alerts:\n  cpu: {severity: page}\n"),
            vec!["alerts.cpu.severity"]
        );
        assert_eq!(keys("requests: {totl: x}\n"), vec!["requests.totl"]);
    }

    #[test]
    fn burn_windows_are_checked() {
        let keys = keys(
            "availability:\n  fast_burn:\n    severity: critical\n    for: 2m\n    windows: [{long: 5m, short: 1h, factor: 2000}]\n",
        );
        assert!(
            keys.contains(&"availability.fast_burn.windows[0].short".to_string()),
            "{keys:?}"
        );
        assert!(
            keys.contains(&"availability.fast_burn.windows[0].factor".to_string()),
            "{keys:?}"
        );
    }
}
