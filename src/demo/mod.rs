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
/// The ready-made log rule set the demo appends to [`DEMO_CONFIG`].
pub const DEMO_LOG_METRICS: &str = include_str!("../../examples/log-metrics.toml");
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
    let text = format!("{DEMO_CONFIG}\n{DEMO_LOG_METRICS}")
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
    let app = open_app().await?;
    deps::add_reachable(&mut config, |name| std::env::var(name).ok()).await;
    let running = crate::start(config, shutdown).await?;
    let stop = CancellationToken::new();
    let app_addr = app.addr;
    // The traffic goes through the proxy when it runs, so RED metrics move.
    let target = running.proxy_addr().map_or(app_addr, |addr| {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    });
    let (app_task, traffic_task) = app.spawn(&stop, target);
    eprintln!(
        "\nsidewatch demo: demo app on http://{app_addr} (JSON logs in {}),\n\
         traffic through http://{target},\n\
         sidewatch on http://{}/metrics  /status  /readyz — Ctrl-C to stop.\n",
        demo_dir().join("app.log").display(),
        running.admin_addr(),
    );
    let result = running.wait().await;
    stop.cancel();
    let _ = tokio::join!(app_task, traffic_task);
    result
}

/// `sidewatch demo --app-only`: only the demo app and its traffic, until
/// shutdown — for a pod where sidewatch runs as its own sidecar container
/// (the Helm chart's demo values), watching this one over loopback.
pub async fn run_app_only(shutdown: Shutdown) -> Result<(), RunError> {
    let app = open_app().await?;
    let stop = CancellationToken::new();
    let app_addr = app.addr;
    let (app_task, traffic_task) = app.spawn(&stop, app_addr);
    eprintln!(
        "sidewatch demo --app-only: demo app on http://{app_addr} (JSON logs in {})",
        demo_dir().join("app.log").display(),
    );
    shutdown.requested().await;
    stop.cancel();
    let _ = tokio::join!(app_task, traffic_task);
    Ok(())
}

/// The demo app, bound and with its log open, not serving yet.
struct DemoApp {
    listener: TcpListener,
    log: app::LogFile,
    addr: SocketAddr,
    fault: Fault,
}

impl DemoApp {
    /// Serves the app and starts its traffic generator, sending to
    /// `traffic_to` (the app, or the proxy in front of it), until `stop`.
    fn spawn(
        self,
        stop: &CancellationToken,
        traffic_to: SocketAddr,
    ) -> (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>) {
        let app = tokio::spawn(app::serve(
            self.listener,
            self.log,
            self.fault,
            stop.clone(),
        ));
        let traffic = tokio::spawn(traffic::generate(traffic_to, stop.clone()));
        (app, traffic)
    }
}

/// Binds the demo app's listener ([`APP_ADDR_ENV`]) and opens its log file;
/// reads the fault to inject ([`FAULT_ENV`]).
async fn open_app() -> Result<DemoApp, RunError> {
    let lookup = |name: &str| std::env::var(name).ok();
    let bad_env = |e: ConfigErrors| RunError::Build {
        key: "demo".into(),
        message: e.to_string(),
    };
    let addr = app_addr(lookup).map_err(bad_env)?;
    let fault = Fault::from_env(lookup(FAULT_ENV).as_deref())
        .map_err(|m| bad_env(ConfigErrors::one(FAULT_ENV, m)))?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind {
            key: "demo app",
            addr,
            source,
        })?;
    let log_dir = demo_dir();
    let log = app::LogFile::open(&log_dir.join("app.log")).map_err(|e| RunError::Build {
        key: "demo app log".into(),
        message: format!("cannot open {}: {e}", log_dir.display()),
    })?;
    Ok(DemoApp {
        listener,
        log,
        addr,
        fault,
    })
}
