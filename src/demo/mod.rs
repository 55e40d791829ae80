//! `sidewatch demo`: a built-in demo app on `127.0.0.1:4799` with realistic
//! latencies, errors, JSON logs and a health endpoint, its own traffic
//! generator, and sidewatch configured against it — so `/metrics` shows
//! real, moving data on a fresh machine.

mod app;
mod deps;
mod traffic;

use std::collections::HashMap;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, ConfigErrors, Format};
use crate::{RunError, Shutdown};

/// The configuration the demo runs with (also an example config).
pub const DEMO_CONFIG: &str = include_str!("../../examples/demo.toml");
/// The ready-made log rule set the demo appends to [`DEMO_CONFIG`].
pub const DEMO_LOG_METRICS: &str = include_str!("../../examples/log-metrics.toml");
/// Where the demo app listens.
pub const DEMO_APP_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4799);

/// The demo's config: [`DEMO_CONFIG`] with `SIDEWATCH__*` overrides from `env`.
pub fn config(env: &HashMap<String, String>) -> Result<Config, ConfigErrors> {
    let text = format!("{DEMO_CONFIG}\n{DEMO_LOG_METRICS}")
        .replace("{demo_dir}", &demo_dir().display().to_string());
    config::load_from_str(&text, Format::Toml, env)
}

/// The demo's temp directory: the app's log (`app.log`) and sidewatch's
/// checkpoints; `{demo_dir}` in [`DEMO_CONFIG`] stands for it.
pub fn demo_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("sidewatch-demo")
}

/// Starts the demo app and its traffic, then runs sidewatch against it until shutdown.
pub async fn run(mut config: Config, shutdown: Shutdown) -> Result<(), RunError> {
    let listener = TcpListener::bind(DEMO_APP_ADDR)
        .await
        .map_err(|source| RunError::Bind {
            key: "demo app",
            addr: DEMO_APP_ADDR,
            source,
        })?;
    let log_dir = demo_dir();
    let log = app::LogFile::open(&log_dir.join("app.log")).map_err(|e| RunError::Build {
        key: "demo app log".into(),
        message: format!("cannot open {}: {e}", log_dir.display()),
    })?;
    deps::add_reachable(&mut config, |name| std::env::var(name).ok()).await;
    let running = crate::start(config, shutdown).await?;
    let stop = CancellationToken::new();
    let app_task = tokio::spawn(app::serve(listener, log, stop.clone()));
    // The traffic goes through the proxy when it runs, so RED metrics move.
    let target = running.proxy_addr().map_or(DEMO_APP_ADDR, |addr| {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    });
    let traffic_task = tokio::spawn(traffic::generate(target, stop.clone()));
    eprintln!(
        "\nsidewatch demo: demo app on http://{DEMO_APP_ADDR} (JSON logs in {}),\n\
         traffic through the proxy on http://{target},\n\
         sidewatch on http://{}/metrics  /status  /readyz — Ctrl-C to stop.\n",
        log_dir.join("app.log").display(),
        running.admin_addr(),
    );
    let result = running.wait().await;
    stop.cancel();
    let _ = tokio::join!(app_task, traffic_task);
    result
}
