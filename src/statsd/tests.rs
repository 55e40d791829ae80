//! Unit tests of the StatsD intake: corpus shapes end to end into the
//! registry, limits, conflicts, garbage.

use prometheus_client::registry::Registry;

use super::*;

fn new_intake(config_toml: &str) -> (Intake, Registry) {
    let config: StatsdConfig = toml::from_str(config_toml).unwrap();
    let mut registry = Registry::default();
    let overflow = OverflowMetrics::register(&mut registry);
    let intake = Intake::build(
        &config,
        vec!["chat_messages".into()],
        &overflow,
        &mut registry,
    )
    .unwrap();
    (intake, registry)
}

fn send(intake: &mut Intake, text: &str) {
    intake.packet(text.as_bytes(), text.len());
}

fn text(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
    out
}

fn has(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "{line:?} missing from\n{text}"
    );
}

#[test]
fn counters_gauges_timers_sets_with_rates_and_tags() {
    let (mut intake, registry) = new_intake(
        r#"
        [[mappings]]
        match = "api.*.requests"
        name = "api_requests_total"
        labels = { endpoint = "$1" }
        "#,
    );
    send(
        &mut intake,
        "api.users.requests:1|c\napi.users.requests:2|c|@0.5\napi.orders.requests:1|c",
    );
    send(
        &mut intake,
        "queue.depth:10|g\nqueue.depth:+5|g\nqueue.depth:-3|g",
    );
    send(&mut intake, "db.query:250|ms|@0.5|#table:users,env:prod");
    send(&mut intake, "payload:1500|h\npayload:2:3|d");
    send(
        &mut intake,
        "visitors:alice|s\nvisitors:bob|s\nvisitors:alice|s",
    );
    send(&mut intake, "login,region=eu:1|c\nlogout#region=us:1|c");
    let t = text(&registry);
    has(&t, r#"api_requests_total{endpoint="users"} 5.0"#);
    has(&t, r#"api_requests_total{endpoint="orders"} 1.0"#);
    has(&t, "queue_depth 12.0");
    has(&t, r#"db_query_count{env="prod",table="users"} 2"#);
    has(&t, r#"db_query_sum{env="prod",table="users"} 0.5"#);
    has(
        &t,
        r#"db_query_bucket{le="0.25",env="prod",table="users"} 2"#,
    );
    has(&t, "payload_count 3");
    has(&t, "visitors 2");
    has(&t, r#"login_total{region="eu"} 1.0"#);
    has(&t, r#"logout_total{region="us"} 1.0"#);
    has(&t, r#"sidewatch_statsd_samples_total{outcome="ok"} 15"#);
    has(&t, r#"sidewatch_statsd_packets_total{outcome="ok"} 6"#);
}

#[test]
fn garbage_conflicts_and_reserved_names_are_counted() {
    let (mut intake, registry) = new_intake("max_packet_bytes = 100\n");
    send(&mut intake, "x:1|c\nx:1|g\nx:1|c|#new:label\n");
    send(
        &mut intake,
        "bad line\nfoo:abc|c\n_e{1,1}:a|b\nsidewatch_up:1|g\nchat.messages:1|c\npg_up:1|g",
    );
    intake.packet(b"\xff\xfe:1|c", 7);
    intake.packet(&[b'a'; 101], 101);
    let t = text(&registry);
    has(&t, "x_total 1.0");
    has(
        &t,
        r#"sidewatch_statsd_samples_total{outcome="conflict"} 2"#,
    );
    has(
        &t,
        r#"sidewatch_statsd_samples_total{outcome="malformed"} 3"#,
    );
    has(
        &t,
        r#"sidewatch_statsd_samples_total{outcome="unsupported"} 1"#,
    );
    has(
        &t,
        r#"sidewatch_statsd_samples_total{outcome="reserved"} 3"#,
    );
    has(
        &t,
        r#"sidewatch_statsd_packets_total{outcome="oversized"} 1"#,
    );
    assert!(!t.contains("sidewatch_up"), "{t}");
}

#[test]
fn a_hundred_thousand_names_stay_bounded() {
    let (mut intake, registry) = new_intake("max_metrics = 100\nmax_series = 500\n");
    let mut packet = String::new();
    for i in 0..100_000 {
        packet.push_str(&format!("name{i}:1|c|#user:u{i}\n"));
        if packet.len() > 7000 {
            intake.packet(packet.as_bytes(), packet.len());
            packet.clear();
        }
    }
    intake.packet(packet.as_bytes(), packet.len());
    assert_eq!(intake.store().len(), 100);
    assert!(intake.cache.len() <= intake.cache_limit);
    let t = text(&registry);
    has(
        &t,
        r#"sidewatch_statsd_samples_total{outcome="over_limit"} 99900"#,
    );
    // Tags over the cap: 10k distinct values on one name.
    let (mut intake, registry) = new_intake("");
    for i in 0..10_000 {
        send(&mut intake, &format!("hits:1|c|#user:u{i}"));
    }
    let t = text(&registry);
    has(&t, r#"hits_total{user="__overflow__"} 9000.0"#);
    has(&t, r#"sidewatch_label_overflow_total{metric="hits"} 9000"#);
}

#[test]
fn hostile_tag_values_cannot_break_the_exposition() {
    let (mut intake, registry) = new_intake("");
    send(&mut intake, "evil:1|c|#q:a\"b\\c,le:1,__x:2,bad-key:3");
    let t = text(&registry);
    has(
        &t,
        r#"evil_total{bad_key="3",q="a\"b\\c",tag___x="2",tag_le="1"} 1.0"#,
    );
}
