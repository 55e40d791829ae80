use prost::Message;
use serde_json::json;

use super::*;
use crate::logs::stage::tests::object;

fn encoder(encoding: LokiEncoding, compression: Compression) -> LokiEncoder {
    let mut config = LogSinkConfig {
        encoding,
        compression,
        labels: vec!["app".into(), "level".into(), "k8s.ns".into()],
        ..LogSinkConfig::default()
    };
    config.static_labels.insert("cluster".into(), "eu-1".into());
    LokiEncoder::new(&config)
}

fn events() -> Vec<Event> {
    vec![
        object(json!({"app": "chat", "level": "info", "ts": 30, "message": "third"})),
        object(json!({"app": "chat", "level": "error", "ts": 20, "message": "other stream"})),
        object(
            json!({"app": "chat", "level": "info", "timestamp": "1970-01-01T00:00:10Z", "message": "first"}),
        ),
        object(
            json!({"app": "chat", "level": "info", "ts": 20, "k8s": {"ns": "prod"}, "message": "nested label"}),
        ),
        object(json!({"app": "chat", "level": "info", "ts": 20, "message": "second"})),
    ]
}

#[test]
fn protobuf_groups_streams_and_sorts_entries() {
    let encoded = encoder(LokiEncoding::Protobuf, Compression::Gzip).encode(&events());
    assert_eq!(encoded.content_type, "application/x-protobuf");
    assert_eq!(encoded.content_encoding, None);
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&encoded.body)
        .unwrap();
    let request = proto::PushRequest::decode(raw.as_slice()).unwrap();
    let labels: Vec<&str> = request.streams.iter().map(|s| s.labels.as_str()).collect();
    assert_eq!(
        labels,
        [
            r#"{app="chat", cluster="eu-1", level="info"}"#,
            r#"{app="chat", cluster="eu-1", level="error"}"#,
            r#"{app="chat", cluster="eu-1", k8s_ns="prod", level="info"}"#,
        ]
    );
    let info = &request.streams[0].entries;
    let seconds: Vec<i64> = info.iter().map(|e| e.timestamp.unwrap().seconds).collect();
    assert_eq!(seconds, [10, 20, 30]);
    let line: serde_json::Value = serde_json::from_str(&info[1].line).unwrap();
    assert_eq!(line["message"], "second", "the line keeps every field");
    assert_eq!(line["app"], "chat");
}

#[test]
fn json_is_gzipped_with_string_nanoseconds() {
    let encoded = encoder(LokiEncoding::Json, Compression::Gzip).encode(&events()[..1]);
    assert_eq!(encoded.content_encoding, Some("gzip"));
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&encoded.body[..]),
        &mut text,
    )
    .unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    let stream = &body["streams"][0];
    assert_eq!(
        stream["stream"],
        json!({"app": "chat", "cluster": "eu-1", "level": "info"})
    );
    assert_eq!(stream["values"][0][0], "30000000000");
}

#[test]
fn an_event_without_labels_gets_its_source() {
    let config = LogSinkConfig {
        labels: vec!["app".into()],
        ..LogSinkConfig::default()
    };
    let encoder = LokiEncoder::new(&config);
    let event = object(json!({"message": "no app"}));
    let set = encoder.label_set(&event);
    assert_eq!(set, [("source".to_owned(), event.meta.source.name.clone())]);
    assert!(
        encoder.timestamp(&event) > 1_600_000_000_000_000_000,
        "read time"
    );
}

#[test]
fn label_values_are_escaped_and_names_checked() {
    assert_eq!(
        render(&[("a".into(), "x\"y\\z\n".into())]),
        r#"{a="x\"y\\z\n"}"#
    );
    assert!(valid_label_name("_ok9"));
    assert!(!valid_label_name("9no") && !valid_label_name("no-dash") && !valid_label_name(""));
    assert_eq!(label_name("http.status-code"), "http_status_code");
    let base = url::Url::parse("http://loki:3100").unwrap();
    assert_eq!(
        push_url(&base).as_str(),
        "http://loki:3100/loki/api/v1/push"
    );
    let custom = url::Url::parse("http://gw/tenant/push").unwrap();
    assert_eq!(push_url(&custom), custom);
}
