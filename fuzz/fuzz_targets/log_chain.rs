//! The log path as a source hands it over: newline-separated lines →
//! parse → correlate → enrich → redact (`Stages::process`, default config),
//! then the JSON-line encoding every sink starts from. Also the pieces on
//! their own: `Fields::parse`, `parse_traceparent`, `Redact::text`.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use prometheus_client::registry::Registry;
use sidewatch::config::logs::StagesConfig;
use sidewatch::config::PodInfo;
use sidewatch::logs::metrics::Metrics;
use sidewatch::logs::sink::encode_json_line;
use sidewatch::logs::stage::correlate::parse_traceparent;
use sidewatch::logs::stage::redact::Redact;
use sidewatch::logs::stage::Stages;
use sidewatch::logs::{Event, EventMeta, Fields, Flags, SourceInfo};

struct Chain {
    stages: Stages,
    redact: Redact,
    source: Arc<SourceInfo>,
}

fn chain() -> &'static Mutex<Chain> {
    static CHAIN: OnceLock<Mutex<Chain>> = OnceLock::new();
    CHAIN.get_or_init(|| {
        let metrics = Metrics::register(&mut Registry::default());
        let pod = PodInfo {
            name: Some("app-7d4b9c-x2x9z".into()),
            namespace: Some("prod".into()),
            node: Some("node-1".into()),
            ip: None,
        };
        let config = StagesConfig::default();
        let stages = Stages::build(&config, &pod, |_| None, &metrics).expect("default stages");
        let redact = Redact::new(&config.redact, &metrics).expect("default redact");
        let source = Arc::new(SourceInfo {
            name: "fuzz".into(),
            metrics: metrics.source("fuzz"),
        });
        Mutex::new(Chain {
            stages,
            redact,
            source,
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let mut chain = chain().lock().unwrap_or_else(|e| e.into_inner());
    let batch: Vec<Event> = data
        .split(|&b| b == b'\n')
        .map(|line| {
            let meta = EventMeta {
                source: Arc::clone(&chain.source),
                path: None,
                read_at: SystemTime::UNIX_EPOCH,
                raw_len: line.len(),
                flags: Flags::default(),
            };
            Event::from_line(line.to_vec(), meta, None)
        })
        .collect();
    let out = chain.stages.process(batch);
    let mut buffer = Vec::new();
    for event in &out {
        encode_json_line(event, &mut buffer);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Fields::parse(text);
        let _ = chain.redact.text(text);
        for line in text.lines() {
            let _ = parse_traceparent(line);
        }
    }
    sidewatch::logs::event::deliver_all(out);
});
