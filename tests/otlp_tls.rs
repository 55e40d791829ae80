//! OTLP export over TLS, gRPC and HTTP/protobuf, to the in-test receiver
//! (tests/otlp_support: no OpenTelemetry Collector binary can be installed
//! here) with a certificate signed by a test CA (made by `openssl`):
//! delivered when `otlp.ca_file` names the CA; without it the handshake
//! fails, every failure is counted and shown in `/status`, nothing is
//! delivered, and sidewatch stays ready.

mod otlp_support;
mod support;
mod test_certs;

use std::time::{Duration, Instant};

use otlp_support::{Protocol, Receiver};
use support::{metric, Sidewatch};

const BASE: &str = "[process]\nenabled = false\n[shutdown]\ngrace_period = \"1s\"\n";

fn failed_exports(text: &str) -> f64 {
    metric(
        text,
        "sidewatch_otlp_exports_total",
        &[("signal", "metrics"), ("outcome", "failed")],
    )
    .unwrap_or_default()
}

fn config(receiver: &Receiver, protocol: &str, ca_file: Option<&std::path::Path>) -> String {
    let ca_file = ca_file.map_or(String::new(), |path| {
        format!("ca_file = \"{}\"\n", path.display())
    });
    format!(
        "{BASE}[otlp]\nendpoint = \"{}\"\nprotocol = \"{protocol}\"\ntimeout = \"1s\"\n{ca_file}[otlp.metrics]\ninterval = \"100ms\"\n",
        receiver.endpoint()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_reach_a_tls_receiver_trusted_through_the_ca_file_only() {
    let certs = tempfile::tempdir().unwrap();
    test_certs::certificates(certs.path());
    let tls = test_certs::server_config(
        &certs.path().join("server.crt"),
        &certs.path().join("server.key"),
    );
    for (protocol, name) in [(Protocol::Grpc, "grpc"), (Protocol::Http, "http/protobuf")] {
        let receiver = Receiver::start_tls(protocol, tls.clone());
        assert!(receiver.endpoint().starts_with("https://"));

        // The test CA is not in the system's store: every handshake fails.
        let sidewatch = Sidewatch::start(&config(&receiver, name, None)).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while failed_exports(&sidewatch.metrics().await) < 2.0 {
            assert!(Instant::now() < deadline, "{name}: failures counted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let status = sidewatch.status().await;
        let shown = &status["otlp"]["metrics"];
        assert_eq!(shown["ok"], false, "{name}: {status}");
        let error = shown["last_error"].as_str().unwrap_or_default();
        assert!(
            error.to_lowercase().contains("certificate"),
            "{name}: the error names the certificate: {status}"
        );
        assert_eq!(sidewatch.get("/readyz").await.status(), 200);
        sidewatch.stop().await;
        assert!(
            receiver.seen(|s| s.metrics.is_empty()),
            "{name}: nothing got through an untrusted handshake"
        );

        // With the CA named, the same receiver gets the exports.
        let ca = certs.path().join("ca.crt");
        let sidewatch = Sidewatch::start(&config(&receiver, name, Some(&ca))).await;
        receiver
            .wait_async(
                &format!("{name} metrics over TLS"),
                Duration::from_secs(10),
                |s| !s.metrics.is_empty(),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let status = sidewatch.status().await;
        assert_eq!(status["otlp"]["metrics"]["ok"], true, "{name}: {status}");
        sidewatch.stop().await;
    }
}
