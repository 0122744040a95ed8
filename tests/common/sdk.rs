//! The pinned official MCP SDKs, the reference server and the conformance suite, installed by
//! `tests/interop/setup.sh` into a git-ignored folder on first use.

use std::process::Command;
use std::sync::OnceLock;

/// `tests/interop`.
pub fn interop_dir() -> String {
    format!("{}/tests/interop", env!("CARGO_MANIFEST_DIR"))
}

/// Where the installed packages live (`node/`, `mcp1/`, `mcp2/`).
pub fn deps_dir() -> String {
    format!("{}/.deps", interop_dir())
}

/// Installs everything once per process (the script itself serialises across processes).
pub fn setup() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let status = Command::new("bash")
            .arg(format!("{}/setup.sh", interop_dir()))
            .status()
            .expect("run tests/interop/setup.sh");
        assert!(
            status.success(),
            "installing the MCP SDKs failed (python3 -m venv, pip and npm are needed)"
        );
    });
}
