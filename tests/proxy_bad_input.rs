//! The proxy under bad input, against a real loopback app: an unreachable
//! or slow app (502/504 by reason), an upstream reset mid-response, huge and
//! malformed request heads (431/400), slowloris clients, and 10k aborted
//! requests on distinct paths with FDs and RSS back at their baseline.

mod proxy_support;
mod support;

use std::time::{Duration, Instant};

use proxy_support::process::Process;
use proxy_support::{read_head, spawn_app, start, value};
use support::{client, metric};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_slow_apps_answer_502_and_504_by_reason() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (sidewatch, base) = start(closed, "").await;
    let r = client().get(format!("{base}/x")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let text = sidewatch.metrics().await;
    assert_eq!(
        value(
            &text,
            "sidewatch_proxy_upstream_errors_total",
            &[("reason", "connect")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "http_requests_total",
            &[("method", "GET"), ("route", "/x"), ("status", "502")]
        ),
        1.0
    );
    sidewatch.stop().await;

    let app = spawn_app().await;
    let (sidewatch, base) = start(app, "response_timeout = \"100ms\"").await;
    let r = client().get(format!("{base}/slow")).send().await.unwrap();
    assert_eq!(r.status(), 504);
    let text = sidewatch.metrics().await;
    assert_eq!(
        value(
            &text,
            "sidewatch_proxy_upstream_errors_total",
            &[("reason", "timeout")]
        ),
        1.0
    );
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_reset_mid_response_is_counted_and_cuts_the_client() {
    // An app that promises 1000 bytes, sends 10 and closes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = read_head(&mut s).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
                    .await;
            });
        }
    });
    let (sidewatch, base) = start(app, "").await;
    let response = client().get(format!("{base}/cut")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.bytes().await.is_err(),
        "the client must see the body cut"
    );
    let text = sidewatch
        .wait_for_metric(
            "sidewatch_proxy_upstream_errors_total",
            &[("reason", "reset")],
            Duration::from_secs(5),
            |v| v == 1.0,
        )
        .await;
    let _ = text;
    sidewatch
        .wait_for_metric(
            "http_requests_in_flight",
            &[],
            Duration::from_secs(5),
            |v| v == 0.0,
        )
        .await;
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_headers_get_431_and_slowloris_is_cut() {
    let app = spawn_app().await;
    let (sidewatch, _) = start(
        app,
        "header_read_timeout = \"300ms\"\nmax_header_bytes = 8192",
    )
    .await;
    let proxy = sidewatch.proxy.unwrap();

    let mut stream = TcpStream::connect(proxy).await.unwrap();
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nx-big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let _ = stream.write_all(big.as_bytes()).await;
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");

    let mut garbage = TcpStream::connect(proxy).await.unwrap();
    garbage.write_all(b"HELLO THERE\r\n\r\n").await.unwrap();
    let head = read_head(&mut garbage).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");

    let mut slow = TcpStream::connect(proxy).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "slowloris connection still open after 5 s");
    assert!(started.elapsed() < Duration::from_secs(3));

    let text = sidewatch
        .wait_for_metric(
            "sidewatch_proxy_connection_errors_total",
            &[("reason", "header_timeout")],
            Duration::from_secs(5),
            |v| v >= 1.0,
        )
        .await;
    let _ = text;
    let text = sidewatch.metrics().await;
    assert!(
        value(
            &text,
            "sidewatch_proxy_connection_errors_total",
            &[("reason", "header_too_large")]
        ) >= 1.0
    );
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_aborted_requests_leave_no_fds_or_memory_behind() {
    let app = spawn_app().await;
    let sidewatch = Process::start(app).await;
    let proxy = sidewatch.proxy;
    let base = format!("http://{proxy}");
    client().get(format!("{base}/x/warm")).send().await.unwrap();
    let abort = |i: usize| async move {
        let Ok(mut s) = TcpStream::connect(proxy).await else {
            return;
        };
        // Distinct paths; half hang up mid-body, the rest before the answer
        // (one in a hundred while the app takes 300 ms).
        let request = match (i % 2, i % 100) {
            (0, _) => {
                format!("POST /x/k{i} HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\npartial")
            }
            (_, 1) => format!("GET /slow?k{i} HTTP/1.1\r\nHost: a\r\n\r\n"),
            _ => format!("GET /x/g{i} HTTP/1.1\r\nHost: a\r\n\r\n"),
        };
        let _ = s.write_all(request.as_bytes()).await;
    };
    let idle = || async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = sidewatch.metrics().await.unwrap_or_default();
            if metric(&text, "http_requests_in_flight", &[]) == Some(0.0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "requests stay in flight:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // Batches of 200 at a time, each let through before the next, so the
    // busiest moment (and with it the allocator's working set) is the same
    // in every burst however loaded the machine is.
    let burst = |from: usize| async move {
        for batch in (from..from + 1000).collect::<Vec<_>>().chunks(200) {
            futures::future::join_all(batch.iter().map(|i| abort(*i))).await;
            idle().await;
        }
    };
    // Past one of sidewatch's 10 s `malloc_trim` rounds, so both samples are
    // taken with freed memory handed back (a sample just before a round and
    // one just after it differ by what the busiest moment needed).
    let settle = || async {
        idle().await;
        tokio::time::sleep(Duration::from_millis(10_500)).await;
    };
    // A first burst of 10k reaches steady state (pools warm, every family at
    // its series cap, the allocator at its working set); after a second
    // burst of 10k, FDs must be back at that baseline and RSS within 8 MiB
    // of it. The same build has measured 5 MiB apart in either direction
    // (42.9 → 37.6 MiB in one run, 37.9 → 43.0 in the next, on a 2-core
    // AMD EPYC VM, 2026-12-04): what the allocators keep after a burst
    // varies from run to run. A leak of a buffer or a connection's state
    // per aborted request (a kilobyte or more: 10 MiB and up over 10k) still
    // fails it.
    for k in 0..10 {
        burst(k * 1000).await;
    }
    settle().await;
    let (fds, rss) = (sidewatch.fds(), sidewatch.status("VmRSS:"));
    for k in 10..20 {
        burst(k * 1000).await;
    }
    settle().await;
    let (fds_after, rss_after) = (sidewatch.fds(), sidewatch.status("VmRSS:"));
    eprintln!("sidewatch: fds {fds} -> {fds_after}, RSS {rss} -> {rss_after} kB");
    assert!(fds_after <= fds + 2, "open fds {fds} -> {fds_after}");
    assert!(rss_after <= rss + 8 * 1024, "RSS {rss} -> {rss_after} kB");
    let text = sidewatch.metrics().await.unwrap();
    assert!(
        value(
            &text,
            "sidewatch_label_overflow_total",
            &[("metric", "http_requests_total")]
        ) > 0.0
    );
    let series = text
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .count();
    assert!(series <= 1001, "{series} series");
    // Still serving.
    assert_eq!(
        client()
            .get(format!("{base}/x/after"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
