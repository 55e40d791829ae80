//! Recording rules: every SLI per `namespace`/`job`, named
//! `level:metric:operations`, plus the SLO thresholds as constant series so
//! dashboards draw the lines the rules use.

use std::collections::BTreeSet;
use std::time::Duration;

use super::model::{Ctx, Rule};
use super::spec::{mins, prom_duration};

const BY: &str = "namespace, job";

fn record(record: String, expr: String) -> Rule {
    Rule::Record {
        record,
        expr,
        labels: Vec::new(),
    }
}

/// Every window the availability SLI is recorded over (5m … the SLO window).
pub fn availability_windows(ctx: &Ctx) -> BTreeSet<Duration> {
    let a = &ctx.spec.availability;
    let mut windows = BTreeSet::from([mins(5), a.window]);
    for burn in [&a.fast_burn, &a.slow_burn] {
        for pair in &burn.windows {
            windows.insert(pair.long);
            windows.insert(pair.short);
        }
    }
    windows.extend(ctx.alert("availability_low").and_then(|a| a.window));
    windows.extend(ctx.alert("errors_5xx").and_then(|a| a.window));
    windows
}

/// The request SLIs: rate, 5xx/4xx ratios, availability, burn rate, budget, latency.
pub fn requests(ctx: &Ctx) -> Vec<Rule> {
    let req = ctx.requests();
    let total = &ctx.spec.requests.total;
    let status = &ctx.spec.requests.status_label;
    let rate = |matchers: &str, w: &str| {
        format!("sum by ({BY}) (rate({total}{}[{w}]))", ctx.sel(matchers))
    };
    // `or 0 * total` gives 0 (not nothing) when there is traffic but no errors;
    // dividing by `total > 0` gives nothing (not NaN) when there is no traffic.
    let ratio = |class: char, w: &str| {
        format!(
            "({} or 0 * {}) / ({} > 0)",
            rate(&format!("{status}=~\"{class}..\""), w),
            rate("", w),
            rate("", w)
        )
    };
    let mut rules = vec![record(
        format!("namespace_job:{req}:rate5m"),
        rate("", "5m"),
    )];
    let objective = ctx
        .render
        .num("availability_objective", ctx.spec.availability.objective);
    for w in availability_windows(ctx) {
        let w = prom_duration(w);
        rules.push(record(
            format!("namespace_job:{req}_5xx:ratio_rate{w}"),
            ratio('5', &w),
        ));
        rules.push(record(
            format!("namespace_job:{req}_availability:ratio_rate{w}"),
            format!("1 - namespace_job:{req}_5xx:ratio_rate{w}"),
        ));
        rules.push(record(
            format!("namespace_job:slo_burn_rate:ratio_rate{w}"),
            format!("namespace_job:{req}_5xx:ratio_rate{w} / (1 - {objective} / 100)"),
        ));
    }
    let slo_window = prom_duration(ctx.spec.availability.window);
    rules.push(record(
        format!("namespace_job:slo_error_budget_remaining:ratio_rate{slo_window}"),
        format!("1 - namespace_job:slo_burn_rate:ratio_rate{slo_window}"),
    ));
    let w4 = ctx
        .alert("errors_4xx")
        .and_then(|a| a.window)
        .unwrap_or(mins(5));
    for w in BTreeSet::from([mins(5), w4]) {
        let w = prom_duration(w);
        rules.push(record(
            format!("namespace_job:{req}_4xx:ratio_rate{w}"),
            ratio('4', &w),
        ));
    }
    rules.extend(latency(ctx));
    rules
}

/// The latency windows: 5m for p50, and the p95/p99 alerts' windows.
fn latency(ctx: &Ctx) -> Vec<Rule> {
    let d = &ctx.spec.requests.duration;
    let mut wanted = BTreeSet::new();
    for (q, key) in [
        ("50", None),
        ("95", Some("latency_p95")),
        ("99", Some("latency_p99")),
    ] {
        let w = key
            .and_then(|k| ctx.alert(k))
            .and_then(|a| a.window)
            .unwrap_or(mins(5));
        wanted.insert((q, prom_duration(w)));
        wanted.insert((q, "5m".to_owned()));
    }
    wanted
        .into_iter()
        .map(|(q, w)| {
            // `and on (…) count > 0` keeps no-traffic intervals empty instead of NaN.
            record(
                format!("namespace_job:{d}:p{q}_rate{w}"),
                format!(
                    "histogram_quantile(0.{q}, sum by ({BY}, le) (rate({d}_bucket{sel}[{w}]))) \
                     and on ({BY}) (sum by ({BY}) (rate({d}_count{sel}[{w}])) > 0)",
                    sel = ctx.sel("")
                ),
            )
        })
        .collect()
}

/// Saturation and reachability of the dependencies, worst pod per namespace/job.
pub fn dependencies(ctx: &Ctx) -> Vec<Rule> {
    let pod = "namespace, job, pod";
    let s = |m: &str| ctx.sel(m);
    vec![
        record(
            "namespace_job:pg_connections_used:ratio".into(),
            format!(
                "max by ({BY}, server) (sum by ({pod}, server) (pg_stat_activity_count{}) \
                 / on ({pod}, server) (max by ({pod}, server) (pg_settings_max_connections{}) > 0))",
                s("scope=\"server\""),
                s("")
            ),
        ),
        record(
            "namespace_job:redis_clients_used:ratio".into(),
            format!(
                "max by ({BY}, server) (max by ({pod}, server) (redis_connected_clients{}) \
                 / on ({pod}, server) (max by ({pod}, server) (redis_config_maxclients{}) > 0))",
                s("scope=\"server\""),
                s("")
            ),
        ),
        record(
            "namespace_job:db_client_connection_used:ratio".into(),
            format!(
                "max by ({BY}, pool_name) (sum by ({pod}, source, pool_name) (db_client_connection_count{}) \
                 / on ({pod}, source, pool_name) (max by ({pod}, source, pool_name) (db_client_connection_max{}) > 0))",
                s("state=\"used\""),
                s("")
            ),
        ),
        record("namespace_job:pg_up:min".into(), format!("min by ({BY}, server) (pg_up{})", s(""))),
        record("namespace_job:redis_up:min".into(), format!("min by ({BY}, server) (redis_up{})", s(""))),
        record(
            "namespace_job:sidewatch_target_up:min".into(),
            format!("min by ({BY}, target) (sidewatch_target_up{})", s("")),
        ),
    ]
}

/// The SLO lines as constant series (`slo:<sli>:<unit>`), so dashboards follow the values.
pub fn thresholds(ctx: &Ctx) -> Vec<Rule> {
    let r = ctx.render;
    let mut rules = vec![record(
        "slo:availability_objective:ratio".into(),
        format!(
            "vector({} / 100)",
            r.num("availability_objective", ctx.spec.availability.objective)
        ),
    )];
    for (key, name, percent) in [
        ("latency_p95", "slo:latency_p95_threshold:seconds", false),
        ("latency_p99", "slo:latency_p99_threshold:seconds", false),
        ("errors_5xx", "slo:errors_5xx_threshold:ratio", true),
        ("errors_4xx", "slo:errors_4xx_threshold:ratio", true),
    ] {
        if let Some(t) = ctx.alert(key).and_then(|a| a.threshold) {
            let value = r.num(&format!("{key}_threshold"), t);
            let expr = if percent {
                format!("vector({value} / 100)")
            } else {
                format!("vector({value})")
            };
            rules.push(record(name.into(), expr));
        }
    }
    rules
}
