//! Records the git revision for `sidewatch_build_info`.

use std::process::Command;

fn main() {
    let revision = std::env::var("SIDEWATCH_REVISION").ok().or_else(|| {
        let out = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    });
    println!(
        "cargo:rustc-env=SIDEWATCH_REVISION={}",
        revision.unwrap_or_else(|| "unknown".into())
    );
    println!("cargo:rerun-if-env-changed=SIDEWATCH_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
}
