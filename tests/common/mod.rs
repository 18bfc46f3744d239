//! Helpers shared by the CLI end-to-end tests: fixture paths and running the binary.
use std::path::PathBuf;

pub mod sf2;
use std::process::Command;

/// A fixture under `tests/data`.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Runs `improvnet ARGS`: (success, stdout, stderr).
pub fn improvnet(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_improvnet"))
        .args(args)
        .output()
        .expect("binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
