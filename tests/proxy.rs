//! The reverse proxy against a real HTTP app on loopback
//! (tests/proxy_support): RED metrics per route and status after a scripted
//! mix, request identity and trace context, the access-log event, WebSocket
//! echo, h2c, 100 MB streamed both ways, the grace period at shutdown.

mod proxy_support;
mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use proxy_support::{read_head, rss_bytes, spawn_app, spawn_slow_request, start, value};
use support::client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_and_buckets_per_route_and_status_with_exemplars() {
    let app = spawn_app().await;
    let (sidewatch, base) = start(app, "").await;
    let http = client();
    for i in 0..10 {
        let r = http
            .get(format!("{base}/api/orders/{i}?x=1"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "order");
    }
    for _ in 0..3 {
        assert_eq!(
            http.get(format!("{base}/fail"))
                .send()
                .await
                .unwrap()
                .status(),
            500
        );
    }
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for _ in 0..2 {
        let r = http
            .get(format!("{base}/slow"))
            .header("traceparent", traceparent)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = http
        .post(format!("{base}/nope"))
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            format!("{base}/nope"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    sidewatch
        .wait_for_metric(
            "http_requests_in_flight",
            &[],
            Duration::from_secs(5),
            |v| v == 0.0,
        )
        .await;

    let text = sidewatch.metrics().await;
    let labels = |m, r, s| [("method", m), ("route", r), ("status", s)];
    assert_eq!(
        value(
            &text,
            "http_requests_total",
            &labels("GET", "/api/orders/{id}", "200")
        ),
        10.0
    );
    assert_eq!(
        value(&text, "http_requests_total", &labels("GET", "/fail", "500")),
        3.0
    );
    assert_eq!(
        value(
            &text,
            "http_requests_total",
            &labels("POST", "/nope", "404")
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "http_requests_total",
            &labels("OTHER", "/nope", "404")
        ),
        1.0
    );
    let slow = |le| {
        value(
            &text,
            "http_request_duration_seconds_bucket",
            &[
                ("method", "GET"),
                ("route", "/slow"),
                ("status", "200"),
                ("le", le),
            ],
        )
    };
    assert_eq!(slow("0.25"), 0.0);
    assert_eq!(slow("0.5"), 2.0);
    assert_eq!(slow("+Inf"), 2.0);
    let fast = value(
        &text,
        "http_request_duration_seconds_bucket",
        &[
            ("method", "GET"),
            ("route", "/api/orders/{id}"),
            ("status", "200"),
            ("le", "0.25"),
        ],
    );
    assert_eq!(fast, 10.0);
    assert_eq!(
        value(
            &text,
            "http_request_size_bytes_sum",
            &labels("POST", "/nope", "404")
        ),
        3.0
    );
    assert_eq!(
        value(
            &text,
            "http_response_size_bytes_sum",
            &labels("GET", "/api/orders/{id}", "200")
        ),
        50.0
    );

    let open = sidewatch.openmetrics().await;
    let exemplar = open
        .lines()
        .find(|l| {
            l.starts_with("http_request_duration_seconds_bucket")
                && l.contains("route=\"/slow\"")
                && l.contains(" # ")
        })
        .unwrap_or_else(|| panic!("no exemplar on /slow:\n{open}"));
    assert!(
        exemplar.contains(r#"# {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"}"#),
        "{exemplar}"
    );
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_and_trace_context_reach_the_app_and_the_access_log() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let sinks = format!(
        "[[logs.sinks]]\ntype = \"file\"\npath = '{}'\n",
        log.display()
    );
    let (sidewatch, base) = start(app, &sinks).await;
    let http = client();
    let headers = |r: reqwest::Response| async move {
        serde_json::from_str::<serde_json::Value>(&r.text().await.unwrap()).unwrap()
    };

    // Absent: a UUID v7 is added, and a traceparent with the sampled flag off.
    let seen = headers(http.get(format!("{base}/headers")).send().await.unwrap()).await;
    let generated = seen["x-request-id"].as_str().unwrap().to_owned();
    assert_eq!(generated.len(), 36, "{seen}");
    assert_eq!(&generated[14..15], "7", "{seen}");
    let created = seen["traceparent"].as_str().unwrap();
    assert!(
        created.starts_with("00-") && created.ends_with("-00"),
        "{seen}"
    );
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");

    // Present: kept as sent, tracestate too.
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let seen = headers(
        http.get(format!("{base}/headers"))
            .header("x-request-id", "req-given-1")
            .header("traceparent", traceparent)
            .header("tracestate", "vendor=1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["x-request-id"], "req-given-1");
    assert_eq!(seen["traceparent"], traceparent);
    assert_eq!(seen["tracestate"], "vendor=1");
    assert_eq!(
        seen["connection"], "",
        "hop-by-hop headers are not forwarded"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let events: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if events.len() >= 2 || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let given = events
        .iter()
        .find(|e| e["correlation_id"] == "req-given-1")
        .unwrap_or_else(|| panic!("no access event for req-given-1: {events:?}"));
    assert_eq!(given["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(given["method"], "GET");
    assert_eq!(given["route"], "/headers");
    assert_eq!(given["path"], "/headers");
    assert_eq!(given["status"], 200);
    assert!(given["duration_seconds"].as_f64().unwrap() > 0.0);
    assert!(given["response_bytes"].as_u64().unwrap() > 0);
    let stamp = given["timestamp"].as_str().unwrap_or_default();
    assert!(
        humantime::parse_rfc3339(stamp).is_ok(),
        "timestamp {stamp:?} is not RFC 3339"
    );
    assert!(
        events
            .iter()
            .any(|e| e["correlation_id"] == generated.as_str()),
        "{events:?}"
    );
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_echoes_through_the_proxy() {
    let app = spawn_app().await;
    let (sidewatch, _) = start(app, "").await;
    let mut stream = TcpStream::connect(sidewatch.proxy.unwrap()).await.unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    // A masked WebSocket text frame "hello", echoed back byte for byte.
    let frame = [
        0x81,
        0x85,
        1,
        2,
        3,
        4,
        b'h' ^ 1,
        b'e' ^ 2,
        b'l' ^ 3,
        b'l' ^ 4,
        b'o' ^ 1,
    ];
    for _ in 0..3 {
        stream.write_all(&frame).await.unwrap();
        let mut echoed = [0u8; 11];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echoed, frame);
    }
    drop(stream);
    let text = sidewatch.metrics().await;
    assert_eq!(
        value(
            &text,
            "http_requests_total",
            &[("method", "GET"), ("route", "/ws"), ("status", "101")]
        ),
        1.0
    );
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_is_proxied() {
    let app = spawn_app().await;
    let (sidewatch, base) = start(app, "").await;
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<Bytes>>();
    for i in 0..5 {
        let uri: http::Uri = format!("{base}/api/orders/{i}").parse().unwrap();
        let response = h2.get(uri).await.unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.status(), 200);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap();
        assert_eq!(body.to_bytes(), "order");
    }
    let text = sidewatch.metrics().await;
    assert_eq!(
        value(
            &text,
            "http_requests_total",
            &[
                ("method", "GET"),
                ("route", "/api/orders/{id}"),
                ("status", "200")
            ]
        ),
        5.0
    );
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_upgrade_is_declined_and_measured_over_http1() {
    let app = spawn_app().await;
    let (sidewatch, base) = start(app, "").await;
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"GET /api/orders/7 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n\
              Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        )
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("upgrade"), "{head}");
    let text = sidewatch.metrics().await;
    let labels = [
        ("method", "GET"),
        ("route", "/api/orders/{id}"),
        ("status", "200"),
    ];
    assert_eq!(value(&text, "http_requests_total", &labels), 1.0);
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_body_streams_both_ways_without_rss_growth() {
    let app = spawn_app().await;
    let (sidewatch, base) = start(app, "").await;
    let http = client();
    // Warm up the allocator and the connection pool.
    http.get(format!("{base}/download?16"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let before = rss_bytes();
    const CHUNKS: usize = 1600; // × 64 KiB = 100 MiB
    let chunk = Bytes::from(vec![b'y'; 64 * 1024]);
    let upload = http_body_util::StreamBody::new(futures::stream::iter(
        (0..CHUNKS).map(move |_| Ok::<_, std::io::Error>(hyper::body::Frame::data(chunk.clone()))),
    ));
    let r = http
        .post(format!("{base}/upload"))
        .body(reqwest::Body::wrap(upload))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), (CHUNKS * 64 * 1024).to_string());
    let mut response = http
        .get(format!("{base}/download?{CHUNKS}"))
        .send()
        .await
        .unwrap();
    let mut received = 0usize;
    while let Some(chunk) = response.chunk().await.unwrap() {
        received += chunk.len();
    }
    assert_eq!(received, CHUNKS * 64 * 1024);
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 20 * 1024 * 1024,
        "RSS grew by {grown} bytes streaming 2 × 100 MiB"
    );
    let text = sidewatch.metrics().await;
    let sum = value(
        &text,
        "http_response_size_bytes_sum",
        &[("method", "GET"), ("route", "/download"), ("status", "200")],
    );
    assert_eq!(sum, ((CHUNKS + 16) * 64 * 1024) as f64);
    sidewatch.stop().await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_proxying_during_the_grace_period_finishing_in_flight_requests() {
    let app = spawn_app().await;
    // The app never goes away here, so the grace period (1 s) bounds the wait.
    let (sidewatch, base) = start(app, "").await;
    let in_flight = spawn_slow_request(&base);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let stopping = tokio::spawn(sidewatch.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = client()
        .get(format!("{base}/api/orders/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(during.status(), 200, "still proxying after SIGTERM");
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        200,
        "the in-flight request finished"
    );
    stopping.await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(8),
        "{took:?}"
    );
}
