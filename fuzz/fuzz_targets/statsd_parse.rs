//! The StatsD/DogStatsD parser line by line, then the whole datagram
//! through a fresh intake (mappings, store, limits) and the registry's
//! text encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prometheus_client::registry::Registry;
use sidewatch::config::statsd::StatsdConfig;
use sidewatch::statsd::parse::parse_line;
use sidewatch::statsd::Intake;
use sidewatch::telemetry::cardinality::OverflowMetrics;

const CONFIG: &str = r#"
max_metrics = 64
max_series_per_family = 16
max_series = 256

[[mappings]]
match = "chat.*.latency"
name = "chat_latency"
labels = { intent = "$1" }

[[mappings]]
match = "api.*.requests"
name = "api_requests_total"
labels = { endpoint = "$1" }

[[mappings]]
match = "debug.*"
action = "drop"
"#;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.split('\n') {
            let _ = parse_line(line, |sample| {
                assert!(
                    sample.rate > 0.0 && sample.rate <= 1.0,
                    "rate {}",
                    sample.rate
                );
            });
        }
    }
    let config: StatsdConfig = match toml::from_str(CONFIG) {
        Ok(config) => config,
        Err(error) => panic!("fuzz config: {error}"),
    };
    let mut registry = Registry::default();
    let overflow = OverflowMetrics::register(&mut registry);
    let Ok(mut intake) = Intake::build(&config, vec!["taken".into()], &overflow, &mut registry)
    else {
        panic!("intake does not build");
    };
    intake.packet(data, data.len());
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
});
