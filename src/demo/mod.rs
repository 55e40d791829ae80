//! `sidewatch demo`: a built-in demo app on `127.0.0.1:4799` with realistic
//! latencies, errors, JSON logs and a health endpoint, its own traffic
//! generator, and sidewatch configured against it — so `/metrics` shows
//! real, moving data on a fresh machine.

mod app;
mod deps;
mod metrics;
mod traffic;

use std::collections::HashMap;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, ConfigErrors, Format};
use crate::{RunError, Shutdown};

/// The configuration the demo runs with (also an example config).
pub const DEMO_CONFIG: &str = include_str!("../../examples/demo.toml");
/// Where the demo app listens by default.
pub const DEMO_APP_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4799);
/// Env var moving the demo app to another address (tests use a random port).
pub const APP_ADDR_ENV: &str = "SIDEWATCH_DEMO_APP_ADDR";
/// Env var making the demo app misbehave: `health-down` or `errors` (see [`Fault`]).
pub const FAULT_ENV: &str = "SIDEWATCH_DEMO_FAULT";

pub use app::Fault;

/// The demo's config: [`DEMO_CONFIG`] with `SIDEWATCH__*` overrides from `env`,
/// pointed at the demo app's address ([`APP_ADDR_ENV`]).
pub fn config(env: &HashMap<String, String>) -> Result<Config, ConfigErrors> {
    let app_addr = app_addr(|name| env.get(name).cloned())?;
    let text = DEMO_CONFIG
        .replace("{demo_dir}", &demo_dir().display().to_string())
        .replace(&DEMO_APP_ADDR.to_string(), &app_addr.to_string());
    Fault::from_env(env.get(FAULT_ENV).map(String::as_str))
        .map_err(|message| ConfigErrors::one(FAULT_ENV, message))?;
    config::load_from_str(&text, Format::Toml, env)
}

/// The demo app's address: [`APP_ADDR_ENV`], else [`DEMO_APP_ADDR`].
fn app_addr(lookup: impl Fn(&str) -> Option<String>) -> Result<SocketAddr, ConfigErrors> {
    match lookup(APP_ADDR_ENV) {
        None => Ok(DEMO_APP_ADDR),
        Some(text) => text.parse().map_err(|_| {
            ConfigErrors::one(APP_ADDR_ENV, format!("expected ip:port, got {text:?}"))
        }),
    }
}

/// The demo's temp directory: the app's log (`app.log`) and sidewatch's
/// checkpoints; `{demo_dir}` in [`DEMO_CONFIG`] stands for it.
pub fn demo_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("sidewatch-demo")
}

/// Starts the demo app and its traffic, then runs sidewatch against it until shutdown.
pub async fn run(mut config: Config, shutdown: Shutdown) -> Result<(), RunError> {
    let lookup = |name: &str| std::env::var(name).ok();
    let bad_env = |e: ConfigErrors| RunError::Build {
        key: "demo".into(),
        message: e.to_string(),
    };
    let app_addr = app_addr(lookup).map_err(bad_env)?;
    let fault = Fault::from_env(lookup(FAULT_ENV).as_deref())
        .map_err(|m| bad_env(ConfigErrors::one(FAULT_ENV, m)))?;
    let listener = TcpListener::bind(app_addr)
        .await
        .map_err(|source| RunError::Bind {
            key: "demo app",
            addr: app_addr,
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
    let app_task = tokio::spawn(app::serve(listener, log, fault, stop.clone()));
    let traffic_task = tokio::spawn(traffic::generate(app_addr, stop.clone()));
    eprintln!(
        "\nsidewatch demo: demo app on http://{app_addr} (JSON logs in {}),\n\
         sidewatch on http://{}/metrics  /status  /readyz — Ctrl-C to stop.\n",
        log_dir.join("app.log").display(),
        running.admin_addr(),
    );
    let result = running.wait().await;
    stop.cancel();
    let _ = tokio::join!(app_task, traffic_task);
    result
}
