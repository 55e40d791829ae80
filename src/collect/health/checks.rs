//! Reads per-check results out of a JSON health body. Understood shapes:
//!
//! - `{"status":"ok","checks":{"db":"ok","redis":"fail"}}` (values may also be
//!   booleans or objects with a `status`);
//! - Spring Boot actuator: `{"status":"UP","components":{"db":{"status":"UP"}}}`
//!   (nested `components` become `db.primary`), and the older `details` form;
//! - `application/health+json`: `{"status":"pass","checks":{"db:responseTime":[{"status":"pass"}]}}`.

use serde_json::{Map, Value};

/// At most this many checks are exported per target; check names come from
/// outside, so their number is bounded.
pub const MAX_CHECKS: usize = 64;

/// What a health body says.
#[derive(Debug, Default, PartialEq)]
pub struct HealthBody {
    /// The overall status, when the body states one that is understood.
    pub overall: Option<bool>,
    /// Each check's name and whether it passes, in body order.
    pub checks: Vec<(String, bool)>,
    /// Checks beyond [`MAX_CHECKS`] that were left out.
    pub omitted: usize,
}

/// Parses a body; `None` when it is not a JSON object.
pub fn parse(body: &[u8]) -> Option<HealthBody> {
    let Value::Object(root) = serde_json::from_slice::<Value>(body).ok()? else {
        return None;
    };
    let mut out = HealthBody {
        overall: root.get("status").and_then(status_of),
        ..HealthBody::default()
    };
    for key in ["checks", "components"] {
        if let Some(Value::Object(checks)) = root.get(key) {
            collect(checks, "", &mut out);
        }
    }
    if let Some(Value::Object(details)) = root.get("details") {
        let components: Map<String, Value> = details
            .iter()
            .filter(|(_, v)| v.get("status").is_some())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        collect(&components, "", &mut out);
    }
    Some(out)
}

fn collect(checks: &Map<String, Value>, prefix: &str, out: &mut HealthBody) {
    for (name, value) in checks {
        let name = format!("{prefix}{name}");
        if let Some(passing) = status_of(value) {
            push(out, &name, passing);
        }
        if let Some(Value::Object(nested)) = value.get("components") {
            collect(nested, &format!("{name}."), out);
        }
    }
}

fn push(out: &mut HealthBody, name: &str, passing: bool) {
    if out.checks.iter().any(|(n, _)| n == name) {
        return;
    }
    if out.checks.len() < MAX_CHECKS {
        out.checks.push((name.to_owned(), passing));
    } else {
        out.omitted += 1;
    }
}

/// The pass/fail meaning of a status value; `None` when not understood.
fn status_of(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => word(s),
        Value::Object(o) => ["status", "state", "healthy"]
            .iter()
            .find_map(|k| o.get(*k))
            .and_then(status_of),
        // application/health+json: a list of observations; all must pass.
        Value::Array(items) => {
            let states: Vec<bool> = items.iter().filter_map(status_of).collect();
            (!states.is_empty()).then(|| states.iter().all(|s| *s))
        }
        _ => None,
    }
}

fn word(status: &str) -> Option<bool> {
    match status.trim().to_ascii_lowercase().as_str() {
        "ok" | "up" | "pass" | "passing" | "healthy" | "green" | "warn" | "yellow" | "true" => {
            Some(true)
        }
        "fail" | "failed" | "failing" | "down" | "error" | "unhealthy" | "critical" | "red"
        | "out_of_service" | "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(body: &str) -> Vec<(String, bool)> {
        parse(body.as_bytes()).unwrap().checks
    }

    #[test]
    fn simple_checks_map() {
        let body =
            parse(br#"{"status":"ok","checks":{"db":"ok","redis":"fail","cache":true}}"#).unwrap();
        assert_eq!(body.overall, Some(true));
        // In body order: serde_json keeps it (`preserve_order`).
        assert_eq!(
            body.checks,
            vec![
                ("db".into(), true),
                ("redis".into(), false),
                ("cache".into(), true)
            ]
        );
    }

    #[test]
    fn spring_boot_components_nested() {
        let got = checks(
            r#"{"status":"DOWN","components":{"db":{"status":"UP","components":{"primary":{"status":"UP"},"replica":{"status":"DOWN"}}},"diskSpace":{"status":"UP","details":{"free":1}}}}"#,
        );
        assert_eq!(
            got,
            vec![
                ("db".into(), true),
                ("db.primary".into(), true),
                ("db.replica".into(), false),
                ("diskSpace".into(), true)
            ]
        );
    }

    #[test]
    fn spring_boot_1_details_form() {
        let got =
            checks(r#"{"status":"UP","details":{"redis":{"status":"DOWN"},"version":"1.2"}}"#);
        assert_eq!(got, vec![("redis".into(), false)]);
    }

    #[test]
    fn health_json_observation_arrays() {
        let got = checks(
            r#"{"status":"warn","checks":{"db:responseTime":[{"status":"pass"},{"status":"fail"}],"uptime":[{"status":"warn"}]}}"#,
        );
        assert_eq!(
            got,
            vec![("db:responseTime".into(), false), ("uptime".into(), true)]
        );
    }

    #[test]
    fn not_an_object_or_garbage() {
        assert_eq!(parse(b"[1,2]"), None);
        assert_eq!(parse(b"\x00\xff garbage"), None);
        assert_eq!(parse(b"OK"), None);
    }

    #[test]
    fn check_count_is_bounded() {
        let many: Map<String, Value> = (0..100)
            .map(|i| (format!("c{i:03}"), Value::from("ok")))
            .collect();
        let body = serde_json::json!({ "checks": many }).to_string();
        let parsed = parse(body.as_bytes()).unwrap();
        assert_eq!(
            (parsed.checks.len(), parsed.omitted),
            (MAX_CHECKS, 100 - MAX_CHECKS)
        );
    }
}
