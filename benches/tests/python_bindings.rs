//! The Python binding's pytest suite (`bindings/python/run-tests.sh`), run
//! by `cargo test` so that one command runs every test: against the
//! library and the `otlpx-bench sink` this `cargo test` built. The first
//! run makes a virtual environment in `target/py-venv` and installs the
//! pinned test requirements from PyPI.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>/deps`, where this test binary and the cdylib live.
fn deps_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .expect("the test binary's directory")
        .to_path_buf()
}

#[test]
fn pytest_suite_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let library = deps_dir().join("libotlpx_ffi.so");
    assert!(
        library.exists(),
        "{} is missing: `cargo test --workspace` builds it (the otlpx-ffi cdylib)",
        library.display()
    );
    let status = Command::new("bash")
        .arg(root.join("bindings/python/run-tests.sh"))
        .env("OTLPX_LIBRARY", &library)
        .env("OTLPX_BENCH", env!("CARGO_BIN_EXE_otlpx-bench"))
        .status()
        .expect("bash runs bindings/python/run-tests.sh (needs python3 with venv and pip)");
    assert!(
        status.success(),
        "the Python binding's tests failed: {status}"
    );
}
