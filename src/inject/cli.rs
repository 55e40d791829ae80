//! The `sidewatch inject` command line: read manifests from files or stdin,
//! inject, print the result (or a diff) and map errors to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

/// `sidewatch inject` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifest files (multi-document YAML); `-` or none reads stdin.
    pub files: Vec<PathBuf>,
    /// More manifest files, as in kubectl.
    #[arg(short = 'f', long = "filename")]
    pub filename: Vec<PathBuf>,
    /// A classic sidecar (second container) instead of the native one (init container with restartPolicy: Always, Kubernetes >= 1.29).
    #[arg(long)]
    pub classic: bool,
    /// The sidewatch image.
    #[arg(long)]
    pub image: Option<String>,
    /// The ConfigMap holding sidewatch.yaml (the chart's `<fullname>-config`).
    #[arg(long, default_value = "sidewatch-config")]
    pub config_map: String,
    /// The sidewatch.io/instance pod label the chart's PodMonitor selects (the chart's full name).
    #[arg(long, default_value = "sidewatch")]
    pub instance: String,
    /// The app container (default: the first container); annotation sidewatch.io/app-container wins.
    #[arg(long)]
    pub app_container: Option<String>,
    /// Share this log directory (an emptyDir) between the app and sidewatch; annotation sidewatch.io/log-path wins.
    #[arg(long)]
    pub log_path: Option<String>,
    /// Proxy mode with port takeover for every workload (annotation sidewatch.io/app-port turns it on for one).
    #[arg(long)]
    pub port_takeover: bool,
    /// The app port to take over, by name or number (default: the app's first port).
    #[arg(long)]
    pub app_port: Option<String>,
    /// Do not add prometheus.io/* scrape annotations (a PodMonitor selects the pods by label anyway).
    #[arg(long)]
    pub no_annotations: bool,
    /// Print a unified diff of what would change instead of the manifests.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `sidewatch inject`: 0 done, 2 on invalid YAML or an unreadable file.
pub fn command(args: Args) -> ExitCode {
    use std::io::{Read, Write};
    let mut files = args.files;
    files.extend(args.filename);
    if files.is_empty() {
        files.push(PathBuf::from("-"));
    }
    let mut inputs = Vec::with_capacity(files.len());
    for file in &files {
        let read = if file.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map(|_| ("<stdin>".to_owned(), text))
        } else {
            std::fs::read_to_string(file).map(|text| (file.display().to_string(), text))
        };
        match read {
            Ok(input) => inputs.push(input),
            Err(error) => {
                eprintln!("sidewatch inject: cannot read {}: {error}", file.display());
                return ExitCode::from(crate::EXIT_CONFIG);
            }
        }
    }
    let defaults = super::Options::default();
    let options = super::Options {
        native: !args.classic,
        image: args.image.unwrap_or(defaults.image),
        config_map: args.config_map,
        instance: args.instance,
        app_container: args.app_container,
        log_path: args.log_path,
        port_takeover: args.port_takeover,
        app_port: args.app_port,
        scrape_annotations: !args.no_annotations,
    };
    match super::run(&inputs, &options) {
        Ok(injected) => {
            for note in &injected.notes {
                eprintln!("sidewatch inject: {note}");
            }
            let out = if args.dry_run {
                &injected.diff
            } else {
                &injected.yaml
            };
            match std::io::stdout().lock().write_all(out.as_bytes()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("sidewatch inject: cannot write: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(error) => {
            eprintln!("sidewatch inject: {error}");
            ExitCode::from(crate::EXIT_CONFIG)
        }
    }
}
