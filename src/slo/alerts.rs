//! Alert rules: one per catalog entry the spec keeps, with `severity`,
//! `summary`, `description` (humanised values) and `runbook_url`.

use super::catalog::{self, Unit};
use super::model::{Ctx, Rule};
use super::spec::{prom_duration, BurnAlert, Resources};
use super::validate::Resolved;

const POD: &str = "namespace, job, pod";
const POOL: &str = "namespace, job, pod, source, pool_name";
const CONTAINER: &str = "namespace, pod, container";

/// Every alert, the burn-rate pair first.
pub fn alerts(ctx: &Ctx) -> Vec<Rule> {
    let a = &ctx.spec.availability;
    let mut rules = vec![
        burn(ctx, "AvailabilityFastBurn", "fast_burn", &a.fast_burn),
        burn(ctx, "AvailabilitySlowBurn", "slow_burn", &a.slow_burn),
    ];
    rules.extend(ctx.alerts.iter().map(|r| alert(ctx, r)));
    rules
}

fn burn(ctx: &Ctx, name: &str, key: &str, spec: &BurnAlert) -> Rule {
    let r = ctx.render;
    let objective = ctx.spec.availability.objective;
    let pairs: Vec<String> = spec
        .windows
        .iter()
        .map(|w| {
            let long = prom_duration(w.long);
            let factor = r.num(&format!("availability_{key}_factor_{long}"), w.factor);
            format!(
                "(namespace_job:slo_burn_rate:ratio_rate{long} > {factor} and namespace_job:slo_burn_rate:ratio_rate{} > {factor})",
                prom_duration(w.short)
            )
        })
        .collect();
    let described: Vec<String> = spec
        .windows
        .iter()
        .map(|w| {
            let long = prom_duration(w.long);
            format!(
                "{long} and {} above {}×",
                prom_duration(w.short),
                r.num(&format!("availability_{key}_factor_{long}"), w.factor)
            )
        })
        .collect();
    let fill = |text: &str| {
        r.template(text)
            .replace("<objective>", &r.num("availability_objective", objective))
            .replace("<window>", &prom_duration(ctx.spec.availability.window))
            .replace("<pairs>", &described.join(", or "))
    };
    Rule::Alert {
        alert: name.into(),
        expr: pairs.join(" or "),
        r#for: prom_duration(spec.r#for),
        labels: vec![("severity".into(), spec.severity.as_str().into())],
        annotations: annotations(
            ctx,
            name,
            fill(catalog::BURN_SUMMARY),
            fill(catalog::BURN_DESCRIPTION),
        ),
    }
}

fn alert(ctx: &Ctx, r: &Resolved) -> Rule {
    let render = ctx.render;
    let key = r.sli.key;
    let threshold = r
        .threshold
        .map(|t| render.num(&format!("{key}_threshold"), t));
    let cmp = match (&threshold, r.sli.unit) {
        (Some(t), Unit::Percent) => format!("{t} / 100"),
        (Some(t), _) => t.clone(),
        (None, _) => "0".into(),
    };
    let window = r.window.map(prom_duration).unwrap_or_default();
    let fill = |text: &str| {
        render
            .template(text)
            .replace("<threshold>", threshold.as_deref().unwrap_or(""))
            .replace("<window>", &window)
            .replace("<for>", &prom_duration(r.r#for))
    };
    Rule::Alert {
        alert: r.sli.alert.into(),
        expr: expr(ctx, key, &cmp, &window),
        r#for: prom_duration(r.r#for),
        labels: vec![("severity".into(), r.severity.as_str().into())],
        annotations: annotations(
            ctx,
            r.sli.alert,
            fill(r.sli.summary),
            fill(r.sli.description),
        ),
    }
}

fn annotations(
    ctx: &Ctx,
    alert: &str,
    summary: String,
    description: String,
) -> Vec<(String, String)> {
    vec![
        ("summary".into(), summary),
        ("description".into(), description),
        (
            "runbook_url".into(),
            format!(
                "{}/{alert}.md",
                ctx.spec.runbook_base_url.trim_end_matches('/')
            ),
        ),
    ]
}

/// The PromQL of one alert; `t` is the threshold as PromQL, `w` its window.
fn expr(ctx: &Ctx, key: &str, t: &str, w: &str) -> String {
    let s = |m: &str| ctx.sel(m);
    let req = ctx.requests();
    let dur = &ctx.spec.requests.duration;
    let cadvisor = ctx.spec.resources == Resources::Cadvisor;
    match key {
        "availability_low" => format!("namespace_job:{req}_availability:ratio_rate{w} < {t}"),
        "latency_p95" => format!("namespace_job:{dur}:p95_rate{w} > {t}"),
        "latency_p99" => format!("namespace_job:{dur}:p99_rate{w} > {t}"),
        "errors_5xx" => format!("namespace_job:{req}_5xx:ratio_rate{w} > {t}"),
        "errors_4xx" => format!("namespace_job:{req}_4xx:ratio_rate{w} > {t}"),
        "work_stalled" => {
            let b = ctx.spec.business.as_ref();
            let (received, processed) = b.map(|b| (b.received.as_str(), b.processed.as_str())).unwrap_or_default();
            format!(
                "sum by (namespace, job) (increase({received}{}[{w}])) > 0 \
                 unless on (namespace, job) sum by (namespace, job) (increase({processed}{}[{w}])) > 0",
                s(""),
                s("")
            )
        }
        "service_down" => format!("up{} == 0", s("")),
        "health_check" => format!(
            "sidewatch_target_up{} == 0 or sidewatch_health_check_up{} == 0",
            s(""),
            s("")
        ),
        "postgres_down" => format!("pg_up{} == 0", s("")),
        "redis_down" => format!("redis_up{} == 0", s("")),
        "postgres_connections" => format!("namespace_job:pg_connections_used:ratio > {t}"),
        "redis_clients" => format!("namespace_job:redis_clients_used:ratio > {t}"),
        "pool_in_use" => format!(
            "sum by ({POOL}) (db_client_connection_count{}) / on ({POOL}) (max by ({POOL}) (db_client_connection_max{}) > 0) > {t}",
            s("state=\"used\""),
            s("")
        ),
        "pool_waiters" => format!("max by ({POOL}) (db_client_connection_pending_requests{}) > {t}", s("")),
        "cpu" if cadvisor => format!(
            "sum by ({CONTAINER}) (rate(container_cpu_usage_seconds_total{}[{w}])) \
             / on ({CONTAINER}) (sum by ({CONTAINER}) (kube_pod_container_resource_limits{}) > 0) > {t}",
            s("container!=\"\",container!=\"POD\""),
            s("resource=\"cpu\"")
        ),
        "cpu" => format!(
            "rate(app_process_cpu_seconds_total{}[{w}]) / on ({POD}) (app_container_cpu_limit_cores{} > 0) > {t}",
            s(""),
            s("")
        ),
        "memory" if cadvisor => format!(
            "sum by ({CONTAINER}) (container_memory_working_set_bytes{}) \
             / on ({CONTAINER}) (sum by ({CONTAINER}) (kube_pod_container_resource_limits{}) > 0) > {t}",
            s("container!=\"\",container!=\"POD\""),
            s("resource=\"memory\"")
        ),
        "memory" => format!(
            "app_process_resident_memory_bytes{} / on ({POD}) (app_container_memory_limit_bytes{} > 0) > {t}",
            s(""),
            s("")
        ),
        "crash_looping" if cadvisor => format!(
            "increase(kube_pod_container_status_restarts_total{}[{w}]) > {t}",
            s("")
        ),
        "crash_looping" => format!("changes(app_process_start_time_seconds{}[{w}]) > {t}", s("")),
        "sink_failing" => format!(
            "sum by ({POD}, sink) (rate(sidewatch_sink_events_total{}[{w}])) > {t}",
            s("outcome=\"failed\"")
        ),
        "events_dropped" => format!(
            "sum by ({POD}) (rate(sidewatch_events_dropped_total{}[{w}])) > {t} \
             or sum by ({POD}) (rate(sidewatch_dead_letter_events_total{}[{w}])) > {t}",
            s("reason!~\"empty_line|drop|sample\""),
            s("")
        ),
        "buffer_full" => format!(
            "sum by ({POD}, sink) (sidewatch_buffer_bytes{}) / on ({POD}, sink) (sum by ({POD}, sink) (sidewatch_buffer_capacity_bytes{}) > 0) > {t}",
            s("medium=\"disk\""),
            s("medium=\"disk\"")
        ),
        "label_overflow" => format!(
            "sum by ({POD}, metric) (rate(sidewatch_label_overflow_total{}[{w}])) > {t}",
            s("")
        ),
        "collector_failing" => format!("sidewatch_collector_up{} == 0", s("")),
        other => unreachable!("catalog entry {other} has no expression"),
    }
}

/// The alert names the spec generates, for the coverage checks.
pub fn names(rules: &[Rule]) -> Vec<String> {
    rules
        .iter()
        .filter_map(|r| match r {
            Rule::Alert { alert, .. } => Some(alert.clone()),
            Rule::Record { .. } => None,
        })
        .collect()
}
