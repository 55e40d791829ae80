//! Rule groups as data, and the two ways their numbers are written: as
//! literals (the committed rule files) or as Helm `.Values` references.

/// A rule group.
#[derive(Debug, Clone)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Its rules, evaluated in order.
    pub rules: Vec<Rule>,
}

/// A recording or alert rule.
#[derive(Debug, Clone)]
pub enum Rule {
    /// `record:`.
    Record {
        /// Recorded series name (`level:metric:operations`).
        record: String,
        /// PromQL.
        expr: String,
        /// Extra labels.
        labels: Vec<(String, String)>,
    },
    /// `alert:`.
    Alert {
        /// Alert name.
        alert: String,
        /// PromQL.
        expr: String,
        /// `for` in Prometheus syntax.
        r#for: String,
        /// Labels (`severity`).
        labels: Vec<(String, String)>,
        /// `summary`, `description`, `runbook_url`.
        annotations: Vec<(String, String)>,
    },
}

/// What rule builders read: the spec, the resolved alerts and the renderer.
pub struct Ctx<'a> {
    /// The spec.
    pub spec: &'a super::spec::Spec,
    /// The alerts to write.
    pub alerts: &'a [super::validate::Resolved],
    /// How numbers and templates are written.
    pub render: &'a dyn Render,
}

impl Ctx<'_> {
    /// `{matchers}` with the spec's `selector` appended; empty when both are.
    pub fn sel(&self, matchers: &str) -> String {
        let parts: Vec<&str> = [matchers, self.spec.selector.as_str()]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", parts.join(","))
        }
    }

    /// The resolved alert for an SLI key, when it is written.
    pub fn alert(&self, key: &str) -> Option<&super::validate::Resolved> {
        self.alerts.iter().find(|a| a.sli.key == key)
    }

    /// The request counter's name without `_total` (`http_requests`).
    pub fn requests(&self) -> &str {
        let total = &self.spec.requests.total;
        total.strip_suffix("_total").unwrap_or(total)
    }
}

/// How numbers the spec owns and Prometheus templates are written.
pub trait Render {
    /// A number from the spec under `key` (camelCase in Helm values).
    fn num(&self, key: &str, value: f64) -> String;
    /// Annotation text: Prometheus `{{ … }}` templates, made safe for the output.
    fn template(&self, text: &str) -> String;
}

/// Plain rule files: literal numbers, templates as they are.
pub struct Plain;

impl Render for Plain {
    fn num(&self, _key: &str, value: f64) -> String {
        number(value)
    }
    fn template(&self, text: &str) -> String {
        text.to_owned()
    }
}

/// The Helm chart: `{{ .Values.prometheusRule.slo.<key> | default <value> }}`,
/// Prometheus templates wrapped in a raw string so Helm leaves them alone.
pub struct Helm;

impl Render for Helm {
    fn num(&self, key: &str, value: f64) -> String {
        format!(
            "{{{{ .Values.prometheusRule.slo.{} | default {} }}}}",
            camel_case(key),
            number(value)
        )
    }
    fn template(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start..].find("}}") else {
                break;
            };
            out.push_str(&rest[..start]);
            out.push_str("{{`");
            out.push_str(&rest[start..start + len + 2]);
            out.push_str("`}}");
            rest = &rest[start + len + 2..];
        }
        out.push_str(rest);
        out
    }
}

/// A number without a trailing `.0` (`2`, `99.9`, `14.4`).
pub fn number(value: f64) -> String {
    let text = format!("{value}");
    text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
}

/// `latency_p95_threshold` → `latencyP95Threshold`.
pub fn camel_case(key: &str) -> String {
    let mut out = String::new();
    for (i, part) in key.split(['_', '.']).filter(|p| !p.is_empty()).enumerate() {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            if i == 0 {
                out.push(first.to_ascii_lowercase());
            } else {
                out.push(first.to_ascii_uppercase());
            }
            out.extend(chars);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_values_and_escapes() {
        assert_eq!(camel_case("latency_p95_threshold"), "latencyP95Threshold");
        assert_eq!(
            Helm.num("errors_5xx_threshold", 5.0),
            "{{ .Values.prometheusRule.slo.errors5xxThreshold | default 5 }}"
        );
        assert_eq!(
            Helm.template("is {{ $value | humanize }}!"),
            "is {{`{{ $value | humanize }}`}}!"
        );
        assert_eq!(Plain.num("x", 99.9), "99.9");
    }
}
