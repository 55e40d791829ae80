//! The demo's traffic generator: a few requests a second across the demo
//! app's routes, each with its own `x-request-id`.

use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

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
