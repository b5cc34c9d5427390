//! Sets `IMDS_GIT_COMMIT` for `imds --version`: the environment's `IMDS_GIT_COMMIT` when set (a
//! packager building from a tarball), else `git rev-parse --short=12 HEAD`, else "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=IMDS_GIT_COMMIT");
    let commit = match std::env::var("IMDS_GIT_COMMIT").ok().filter(|c| !c.is_empty()) {
        Some(commit) => commit,
        None => {
            // Rebuild when HEAD moves: HEAD itself, and the branch ref it names (loose or packed).
            // Only files that exist: cargo reruns a build script whose listed file is missing.
            let branch = git(&["symbolic-ref", "-q", "HEAD"]);
            for path in ["HEAD", "packed-refs"].into_iter().map(str::to_owned).chain(branch) {
                if let Some(file) = git(&["rev-parse", "--git-path", &path]) {
                    if std::path::Path::new(&file).exists() {
                        println!("cargo:rerun-if-changed={file}");
                    }
                }
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
        }
    };
    println!("cargo:rustc-env=IMDS_GIT_COMMIT={commit}");
}
