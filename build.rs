//! Records the git revision for `sidewatch_build_info`.

use std::path::PathBuf;
use std::process::Command;

/// One line of `git <args>` output, when git answers.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    let revision = std::env::var("SIDEWATCH_REVISION")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]));
    println!(
        "cargo:rustc-env=SIDEWATCH_REVISION={}",
        revision.unwrap_or_else(|| "unknown".into())
    );
    println!("cargo:rerun-if-env-changed=SIDEWATCH_REVISION");
    // Watch the files that move when HEAD does, found through git: in a
    // worktree `.git` is a file, and a path that does not exist would make
    // cargo rerun this script (and rebuild the crate) on every build.
    let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) else {
        return;
    };
    let head = PathBuf::from(&git_dir).join("HEAD");
    if head.exists() {
        println!("cargo:rerun-if-changed={}", head.display());
    }
    let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]);
    let branch = git(&["rev-parse", "--symbolic-full-name", "HEAD"]);
    if let (Some(common), Some(branch)) = (common, branch) {
        let reference = PathBuf::from(common).join(&branch);
        if !branch.is_empty() && reference.exists() {
            println!("cargo:rerun-if-changed={}", reference.display());
        }
    }
}
