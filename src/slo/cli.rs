//! The `sidewatch rules` command line: load the SLO spec, then write or
//! check every generated output.

use std::path::Path;
use std::process::ExitCode;

/// `sidewatch rules`: exit 2 on an invalid spec, 1 when `--check` finds stale outputs.
pub fn command(root: &Path, spec: Option<&Path>, check: bool) -> ExitCode {
    let spec_path = spec.map_or_else(|| root.join(super::SPEC), Path::to_path_buf);
    let (spec, alerts) = match super::load(&spec_path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("sidewatch: {}: {errors}", spec_path.display());
            return ExitCode::from(crate::EXIT_CONFIG);
        }
    };
    let files = match super::outputs(root, &spec, &alerts) {
        Ok(files) => files,
        Err(error) => {
            eprintln!("sidewatch: {error}");
            return ExitCode::FAILURE;
        }
    };
    if check {
        let stale = super::stale(root, &files);
        for path in &stale {
            eprintln!("out of date: {}", path.display());
        }
        return if stale.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    match super::write(root, &files) {
        Ok(()) => {
            for (path, _) in &files {
                println!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("sidewatch: {error}");
            ExitCode::FAILURE
        }
    }
}
