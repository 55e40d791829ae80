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
    // Watch HEAD and the branch it points to (a commit moves the branch, not
    // HEAD) where git keeps them: in a worktree `.git` is a file and refs
    // live in the common directory. A path that does not exist would make
    // cargo rerun this script (and rebuild the crate) on every build.
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", &name])
            .map(PathBuf::from)
            .filter(|path| path.exists())
        {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
