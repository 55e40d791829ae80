//! The StatsD/DogStatsD parser line by line, then the whole datagram
//! through an intake (mappings, store, limits) and, every 64 inputs, the
//! registry's text encoding.
#![no_main]

use std::sync::{Mutex, OnceLock};

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

/// One intake takes many datagrams, as the server's does (so its limits
/// fill up and the overflow paths run too); it is rebuilt every
/// `REBUILD` inputs, as building one per input cost 35 ms.
const REBUILD: u32 = 4096;

struct State {
    intake: Intake,
    registry: Registry,
    inputs: u32,
}

fn build() -> State {
    let config: StatsdConfig = match toml::from_str(CONFIG) {
        Ok(config) => config,
        Err(error) => panic!("fuzz config: {error}"),
    };
    let mut registry = Registry::default();
    let overflow = OverflowMetrics::register(&mut registry);
    let Ok(intake) = Intake::build(&config, vec!["taken".into()], &overflow, &mut registry) else {
        panic!("intake does not build");
    };
    State {
        intake,
        registry,
        inputs: 0,
    }
}

fn state() -> &'static Mutex<Option<State>> {
    static STATE: OnceLock<Mutex<Option<State>>> = OnceLock::new();
    STATE.get_or_init(|| Mutex::new(None))
}

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
    let mut guard = state().lock().unwrap_or_else(|e| e.into_inner());
    if guard.as_ref().is_none_or(|s| s.inputs >= REBUILD) {
        *guard = Some(build());
    }
    let Some(state) = guard.as_mut() else {
        return;
    };
    state.inputs += 1;
    state.intake.packet(data, data.len());
    if state.inputs % 64 == 0 {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &state.registry).expect("encode");
    }
});
