//! The `sidewatch` command line: parse arguments, load config, init tracing,
//! run, and map errors to exit codes (2 for configuration problems).

// One audited exception: the allocator module (the library forbids unsafe code).
#![deny(unsafe_code)]

mod allocator;
mod resident;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sidewatch::config::{self, Config, SelfLogFormat};
use sidewatch::{shutdown, Shutdown};

/// Exit code for invalid configuration or unusable resources.
const CONFIG_ERROR: u8 = sidewatch::EXIT_CONFIG;

/// The observability sidecar: health probes, process and dependency metrics on /metrics.
#[derive(Debug, Parser)]
#[command(name = "sidewatch", version = LONG_VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Configuration file (TOML or YAML) for `run`.
    #[arg(long, short, global = true, env = "SIDEWATCH_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the sidecar (the default).
    Run,
    /// Validate a configuration file, report every error, print the resolved config (secrets masked).
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Start a built-in demo app on 127.0.0.1:4799 and watch it: try `curl localhost:4790/metrics`.
    Demo {
        /// Only the demo app and its traffic, no sidewatch (for a pod with sidewatch as its sidecar).
        #[arg(long)]
        app_only: bool,
    },
    /// Add the sidecar to Kubernetes manifests (files or stdin) and print them.
    Inject(sidewatch::inject::cli::Args),
    /// Generate the recording and alert rules, the Helm PrometheusRule template and the
    /// chart's dashboard copies from the SLO spec.
    Rules {
        /// Repository root the outputs are written under.
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// The SLO spec (default: ROOT/alert-rules/slos.yaml).
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Write nothing; exit 1 if any output is out of date.
        #[arg(long)]
        check: bool,
    },
}

/// `--version` output: the crate version and the git revision.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("SIDEWATCH_REVISION"),
    ")"
);

fn main() -> ExitCode {
    allocator::limit_malloc_arenas();
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig { file } => check_config(&file, &env),
        Command::Run => match config::load(cli.config.as_deref(), &env) {
            Ok(config) => {
                let source = sidewatch::reload::ConfigSource {
                    path: cli.config.clone(),
                    env: env.clone(),
                };
                run(config, Mode::Sidecar(source))
            }
            Err(errors) => config_failure(&errors),
        },
        Command::Inject(args) => sidewatch::inject::cli::command(args),
        Command::Rules { root, spec, check } => {
            sidewatch::slo::cli::command(&root, spec.as_deref(), check)
        }
        Command::Demo { app_only } => match sidewatch::demo::config(&env) {
            Ok(config) if app_only => run(config, Mode::DemoAppOnly),
            Ok(config) => run(config, Mode::Demo),
            Err(errors) => config_failure(&errors),
        },
    }
}

fn check_config(file: &Path, env: &HashMap<String, String>) -> ExitCode {
    match config::load(Some(file), env) {
        Ok(config) => match toml::to_string_pretty(&config) {
            Ok(text) => {
                println!(
                    "# {}: valid; resolved configuration (secrets masked):\n{text}",
                    file.display()
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("sidewatch: cannot print the configuration: {error}");
                ExitCode::FAILURE
            }
        },
        Err(errors) => config_failure(&errors),
    }
}

fn config_failure(errors: &config::ConfigErrors) -> ExitCode {
    eprintln!("sidewatch: {errors}");
    ExitCode::from(CONFIG_ERROR)
}

/// How long after start the pages that ran only to start are unmapped (see
/// [`resident`]): well past every component's set-up and the first probe
/// round. Code that runs later maps itself back in as it runs.
const START_UP: std::time::Duration = std::time::Duration::from_secs(10);

/// What `run` runs.
#[derive(Debug)]
enum Mode {
    /// The sidecar itself, reloadable from its config source.
    Sidecar(sidewatch::reload::ConfigSource),
    /// The demo app with sidewatch watching it.
    Demo,
    /// Only the demo app (`demo --app-only`).
    DemoAppOnly,
}

fn run(config: Config, mode: Mode) -> ExitCode {
    init_tracing(&config);
    allocator::return_freed_memory();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sidewatch")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sidewatch: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.spawn(async {
        tokio::time::sleep(START_UP).await;
        let shed = resident::shed_start_up_pages();
        tracing::debug!(bytes = shed, "start-up pages unmapped");
    });
    let shutdown = Shutdown::new();
    let result = runtime.block_on(async {
        let signals = tokio::spawn(shutdown::listen_for_signals(shutdown.clone()));
        let result = match mode {
            Mode::Sidecar(source) => sidewatch::run_with(config, source, shutdown).await,
            Mode::Demo => sidewatch::demo::run(config, shutdown).await,
            Mode::DemoAppOnly => sidewatch::demo::run_app_only(shutdown).await,
        };
        signals.abort();
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "sidewatch cannot run");
            eprintln!("sidewatch: {error}");
            ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1))
        }
    }
}

/// stderr for sidewatch's own log, dropping what cannot be written (stderr
/// closed, as behind `| head`, or a full disk behind a redirect).
/// tracing-subscriber reports a failed write with `eprintln!`, which panics
/// when stderr is gone — in the signal task that left SIGTERM unanswered.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.self_log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr);
    match config.self_log.format {
        SelfLogFormat::Json => builder.json().with_current_span(false).init(),
        SelfLogFormat::Text => builder.init(),
    }
}
