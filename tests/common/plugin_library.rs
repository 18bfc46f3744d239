//! Where the plugin tests find the plugin binary (shared by the CLAP and VST3 tests).
use std::path::PathBuf;

/// The bundle binary named by the environment variable `env` (CI bundles first and sets it),
/// else the library cargo built next to the test (the lib is also a cdylib; a bundle is a copy).
pub fn plugin_library(env: &str) -> PathBuf {
    if let Some(bundled) = std::env::var_os(env) {
        let bundled = PathBuf::from(bundled);
        assert!(bundled.is_file(), "{env}: no file {}", bundled.display());
        return bundled;
    }
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps folder");
    let candidates = [
        deps.join("libimprovnet.so"),
        deps.join("../libimprovnet.so"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/debug/libimprovnet.so"),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| panic!("no built plugin library among {candidates:?}"))
}
