//! Metric family names: the one list of names sidewatch registers itself
//! (so configured families — log rules, StatsD mappings, re-exposed pool
//! families — cannot take them), and Prometheus' rules for metric and label
//! names.

/// Family name prefixes that belong to sidewatch's own components, each with
/// its owner as shown in configuration errors.
pub const RESERVED_PREFIXES: [&str; 7] = [
    "sidewatch_",
    "process_",
    "app_process_",
    "app_container_",
    "pg_",
    "redis_",
    "db_client_connection_",
];

/// The request metrics the proxy owns (DESIGN.md "Metric names"): reserved
/// whenever a proxy is configured, free for log rules otherwise.
pub const PROXY_FAMILIES: [&str; 5] = [
    "http_requests_total",
    "http_request_duration_seconds",
    "http_request_size_bytes",
    "http_response_size_bytes",
    "http_requests_in_flight",
];

fn owner(prefix: &str) -> &'static str {
    match prefix {
        "sidewatch_" => "sidewatch's own metrics",
        "process_" | "app_process_" | "app_container_" => "the process collector",
        "pg_" => "the PostgreSQL collector",
        "redis_" => "the Redis collector",
        _ => "the pool collector",
    }
}

/// Who already registers a family named `name`, if anyone; `proxy` says
/// whether the proxy (and with it [`PROXY_FAMILIES`]) is configured.
/// Counter names are compared with and without `_total`.
pub fn reserved_by(name: &str, proxy: bool) -> Option<String> {
    if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| name.starts_with(**p)) {
        return Some(format!("{} ({prefix}*)", owner(prefix)));
    }
    let base = family_base(name);
    PROXY_FAMILIES
        .iter()
        .find(|f| proxy && family_base(f) == base)
        .map(|f| format!("the proxy ({f})"))
}

/// The family name without a counter's `_total` suffix: the name two
/// families clash on.
pub fn family_base(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

/// Whether `name` is a valid Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a label name a configured family may use:
/// `[a-zA-Z_][a-zA-Z0-9_]*`, not `__`-prefixed (reserved by Prometheus), and
/// not `le` or `quantile` (used by histograms and summaries).
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
        && name != "le"
        && name != "quantile"
}

/// Turns an arbitrary name (a StatsD metric like `api.requests-ok`) into a
/// valid metric name: every other character becomes `_`, a leading digit
/// gets a `_` in front.
pub fn sanitize_metric_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            c
        } else {
            '_'
        }
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_name_their_owner() {
        assert!(reserved_by("pg_up", false).unwrap().contains("PostgreSQL"));
        assert!(reserved_by("sidewatch_x_total", false).is_some());
        assert!(reserved_by("app_requests_total", false).is_none());
        assert!(reserved_by("http_requests_total", false).is_none());
        assert!(reserved_by("http_requests_total", true)
            .unwrap()
            .contains("proxy"));
        assert!(reserved_by("http_requests", true).is_some());
    }

    #[test]
    fn names_are_checked_and_sanitized() {
        assert!(is_metric_name("a:b_c1"));
        assert!(!is_metric_name("1a") && !is_metric_name("a-b") && !is_metric_name(""));
        assert!(is_label_name("route") && !is_label_name("__x") && !is_label_name("le"));
        assert_eq!(sanitize_metric_name("api.req-ok"), "api_req_ok");
        assert_eq!(sanitize_metric_name("9lives"), "_9lives");
    }
}
