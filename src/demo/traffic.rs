//! The demo's traffic generator: a few requests a second across the demo
//! app's routes, each with its own `x-request-id`.

use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

/// Where the demo's StatsD samples go (`[statsd].listen` in examples/demo.toml).
const STATSD_ADDR: &str = "127.0.0.1:8125";

/// Requests per second, on average.
const RATE: f64 = 8.0;

/// Sends requests to the demo app at `addr` until `stop`.
pub async fn generate(addr: SocketAddr, stop: CancellationToken) {
    let Ok(client) = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
    else {
        return;
    };
    let statsd = tokio::net::UdpSocket::bind("127.0.0.1:0").await.ok();
    let mut sent: u64 = 0;
    loop {
        let (path, pause) = {
            let mut rng = rand::rng();
            let path = match rng.random_range(0..10) {
                0..=4 => "/api/chat".to_owned(),
                5..=7 => format!("/api/orders/{}", rng.random_range(1000..1100)),
                8 => "/api/search".to_owned(),
                _ => "/nope".to_owned(),
            };
            (
                path,
                Duration::from_secs_f64(rng.random_range(0.0..2.0 / RATE)),
            )
        };
        sent += 1;
        if let Some(socket) = &statsd {
            let _ = socket
                .send_to(statsd_packet(sent).as_bytes(), STATSD_ADDR)
                .await;
        }
        let request = client
            .get(format!("http://{addr}{path}"))
            .header("x-request-id", format!("demo-{sent:06}"))
            .send();
        tokio::spawn(async move {
            let _ = request.await;
        });
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// One datagram as an app's StatsD client would send it: a gauge, a mapped
/// counter and a tagged timer.
fn statsd_packet(n: u64) -> String {
    let mut rng = rand::rng();
    let queue = ["emails", "invoices"][rng.random_range(0..2)];
    format!(
        "demo.queue.depth:{}|g\ndemo.jobs.{queue}.processed:1|c\ndemo.job.duration:{}|ms|#queue:{queue},attempt:{}",
        (n % 20) + rng.random_range(0..5),
        rng.random_range(5..900),
        1 + u8::from(rng.random_bool(0.1)),
    )
}
