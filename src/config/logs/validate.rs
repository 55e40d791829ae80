//! Validation of `[logs]`: every problem, each with its dotted key.

use super::*;

impl LogsConfig {
    /// Every problem in `[logs]`, each with its dotted key.
    pub(crate) fn validate(&self) -> Vec<crate::config::load::ConfigError> {
        let mut errors = Vec::new();
        let mut push = |key: String, message: String| {
            errors.push(crate::config::load::ConfigError { key, message })
        };
        if self.queue_batches == 0 {
            push("logs.queue_batches".into(), "must be at least 1".into());
        }
        if !self.sources.is_empty() && self.sinks.is_empty() {
            push(
                "logs.sinks".into(),
                "at least one sink is needed when sources are configured".into(),
            );
        }
        let mut names = std::collections::HashSet::new();
        let mut stdin = 0;
        for (i, source) in self.sources.iter().enumerate() {
            let key = format!("logs.sources[{i}]");
            let name = source.effective_name();
            if !valid_name(name) {
                push(
                    format!("{key}.name"),
                    format!("{name:?}: use letters, digits, `-` and `_` only"),
                );
            } else if !names.insert(name) {
                push(
                    format!("{key}.name"),
                    format!("duplicate source name {name:?}"),
                );
            }
            match source.kind {
                SourceKind::File => {
                    if source.include.is_empty() {
                        push(
                            format!("{key}.include"),
                            "at least one glob pattern is needed".into(),
                        );
                    }
                    for (field, patterns) in
                        [("include", &source.include), ("exclude", &source.exclude)]
                    {
                        for (j, pattern) in patterns.iter().enumerate() {
                            if let Err(e) = crate::logs::tail::Glob::new(pattern) {
                                push(format!("{key}.{field}[{j}]"), e.to_string());
                            }
                        }
                    }
                    for (field, value) in [
                        ("scan_interval", source.scan_interval),
                        ("poll_interval", source.poll_interval),
                        ("checkpoint_interval", source.checkpoint_interval),
                    ] {
                        if value.is_zero() {
                            push(format!("{key}.{field}"), "must be greater than zero".into());
                        }
                    }
                    if source.max_open_files == 0 {
                        push(format!("{key}.max_open_files"), "must be at least 1".into());
                    }
                }
                SourceKind::Tcp | SourceKind::Http => {
                    if !source.include.is_empty() {
                        push(
                            format!("{key}.include"),
                            "only for `type = \"file\"`".into(),
                        );
                    }
                    if source.max_connections == 0 {
                        push(
                            format!("{key}.max_connections"),
                            "must be at least 1".into(),
                        );
                    }
                    if source.max_body_bytes < 1024 {
                        push(
                            format!("{key}.max_body_bytes"),
                            "must be at least 1024".into(),
                        );
                    }
                    if source.max_header_bytes < crate::config::admin::MIN_HEADER_BYTES {
                        push(
                            format!("{key}.max_header_bytes"),
                            format!(
                                "must be at least {}",
                                crate::config::admin::MIN_HEADER_BYTES
                            ),
                        );
                    }
                    let listen = source.effective_listen();
                    if !source.allow_remote && !crate::config::admin::is_loopback(&listen) {
                        push(
                            format!("{key}.listen"),
                            format!("{listen} is not a loopback address: intake would be reachable from outside the pod; set `allow_remote = true` on this source to mean it"),
                        );
                    }
                }
                SourceKind::Stdin => {
                    stdin += 1;
                    if stdin > 1 {
                        push(
                            format!("{key}.type"),
                            "only one stdin source is possible".into(),
                        );
                    }
                    if !source.include.is_empty() {
                        push(
                            format!("{key}.include"),
                            "only for `type = \"file\"`".into(),
                        );
                    }
                }
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, sink) in self.sinks.iter().enumerate() {
            let key = format!("logs.sinks[{i}]");
            let name = sink.effective_name();
            if !valid_name(name) {
                push(
                    format!("{key}.name"),
                    format!("{name:?}: use letters, digits, `-` and `_` only"),
                );
            } else if !names.insert(name) {
                push(
                    format!("{key}.name"),
                    format!("duplicate sink name {name:?}"),
                );
            }
            match (sink.kind, &sink.path) {
                (SinkKind::File, None) => push(format!("{key}.path"), "must be set".into()),
                (
                    SinkKind::Stdout
                    | SinkKind::Discard
                    | SinkKind::Loki
                    | SinkKind::Http
                    | SinkKind::Otlp,
                    Some(_),
                ) => push(format!("{key}.path"), "only for `type = \"file\"`".into()),
                _ => {}
            }
            if matches!(sink.kind, SinkKind::Loki | SinkKind::Http) {
                validate_network(&key, sink, &mut push);
            } else if sink.kind == SinkKind::Otlp {
                if sink.url.is_some() {
                    push(
                        format!("{key}.url"),
                        "an `otlp` sink sends to `otlp.endpoint`; set it there".into(),
                    );
                }
                validate_delivery(&key, sink, &mut push);
            } else if sink.url.is_some() {
                push(
                    format!("{key}.url"),
                    "only for `type = \"loki\"` or `\"http\"`".into(),
                );
            }
            if sink.kind == SinkKind::File && sink.max_bytes > 0 && sink.max_files == 0 {
                push(
                    format!("{key}.max_files"),
                    "must be at least 1 when max_bytes is set".into(),
                );
            }
        }
        let stages = &self.stages;
        if stages.parse.max_line_bytes < 1024 {
            push(
                "logs.stages.parse.max_line_bytes".into(),
                "must be at least 1024".into(),
            );
        }
        if stages.parse.message_field.is_empty() {
            push(
                "logs.stages.parse.message_field".into(),
                "must be set".into(),
            );
        }
        if let Err(e) = regex::Regex::new(&stages.multiline.continuation) {
            push(
                "logs.stages.multiline.continuation".into(),
                format!("invalid regex: {e}"),
            );
        }
        if stages.multiline.flush_timeout.is_zero() {
            push(
                "logs.stages.multiline.flush_timeout".into(),
                "must be greater than zero".into(),
            );
        }
        if stages.correlate.target.is_empty() {
            push("logs.stages.correlate.target".into(), "must be set".into());
        }
        for (i, name) in stages.redact.builtin.iter().enumerate() {
            if !BUILTIN_REDACTIONS.contains(&name.as_str()) {
                push(
                    format!("logs.stages.redact.builtin[{i}]"),
                    format!(
                        "unknown pattern {name:?}; known: {}",
                        BUILTIN_REDACTIONS.join(", ")
                    ),
                );
            }
        }
        for (i, pattern) in stages.redact.patterns.iter().enumerate() {
            let key = format!("logs.stages.redact.patterns[{i}]");
            if !valid_name(&pattern.name) {
                push(
                    format!("{key}.name"),
                    "must be set (letters, digits, `-`, `_`)".into(),
                );
            }
            if let Err(e) = regex::Regex::new(&pattern.regex) {
                push(format!("{key}.regex"), format!("invalid regex: {e}"));
            }
        }
        for (i, rule) in stages.filter.rules.iter().enumerate() {
            let key = format!("logs.stages.filter.rules[{i}]");
            if rule.field.is_empty() {
                push(format!("{key}.field"), "must be set".into());
            }
            if rule.equals.is_empty() {
                push(
                    format!("{key}.equals"),
                    "at least one value is needed".into(),
                );
            }
        }
        errors
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks of a Loki or HTTP sink's keys.
fn validate_network(key: &str, sink: &LogSinkConfig, push: &mut impl FnMut(String, String)) {
    match &sink.url {
        None => push(format!("{key}.url"), "must be set".into()),
        Some(url) if !matches!(url.scheme(), "http" | "https") => push(
            format!("{key}.url"),
            format!("scheme {:?}: use http or https", url.scheme()),
        ),
        Some(_) => {}
    }
    if sink.username.is_some() != sink.password.is_some() {
        push(
            format!("{key}.password"),
            "`username` and `password` go together".into(),
        );
    }
    if sink.username.is_some() && sink.bearer_token.is_some() {
        push(
            format!("{key}.bearer_token"),
            "use either basic auth or a bearer token".into(),
        );
    }
    for (name, value) in &sink.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || http::HeaderValue::from_str(value).is_err()
        {
            push(
                format!("{key}.headers.{name}"),
                "not a valid HTTP header".into(),
            );
        }
    }
    if let Some(tenant) = &sink.tenant_id {
        if http::HeaderValue::from_str(tenant).is_err() || tenant.is_empty() {
            push(
                format!("{key}.tenant_id"),
                "not a valid header value".into(),
            );
        }
    }
    if sink.kind == SinkKind::Loki {
        for (i, label) in sink.labels.iter().enumerate() {
            if label.is_empty() {
                push(format!("{key}.labels[{i}]"), "must not be empty".into());
            }
        }
        for name in sink.static_labels.keys() {
            if !crate::logs::sink::loki::valid_label_name(name) {
                push(
                    format!("{key}.static_labels.{name}"),
                    "label names are letters, digits and `_`, not starting with a digit".into(),
                );
            }
        }
    }
    validate_delivery(key, sink, push);
}

/// Checks of a network sink's `delivery` keys.
fn validate_delivery(key: &str, sink: &LogSinkConfig, push: &mut impl FnMut(String, String)) {
    let delivery = &sink.delivery;
    for (field, value) in [
        ("batch_max_events", delivery.batch_max_events),
        ("batch_max_bytes", delivery.batch_max_bytes),
        ("in_flight", delivery.in_flight),
        ("buffer_batches", delivery.buffer_batches),
    ] {
        if value == 0 {
            push(
                format!("{key}.delivery.{field}"),
                "must be at least 1".into(),
            );
        }
    }
    for (field, value) in [
        ("batch_timeout", delivery.batch_timeout),
        ("request_timeout", delivery.request_timeout),
        ("retry_initial", delivery.retry_initial),
        ("retry_max", delivery.retry_max),
    ] {
        if value.is_zero() {
            push(
                format!("{key}.delivery.{field}"),
                "must be greater than zero".into(),
            );
        }
    }
}
