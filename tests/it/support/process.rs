//! The one way these tests start kscale's own binaries, with one environment policy: a child
//! starts from an empty environment and inherits only [`INHERITED`] (where programs are, the
//! home directory, coverage output). Every setting of kscale (`KSCALE_*`), of the server (its
//! unprefixed `WORKERS`, `MAX_BODY_BYTES`, ..., `RUST_LOG`, `POD_NAME`), `KUBECONFIG` and
//! anything else set on the machine stays out; a test that needs a variable sets it on the
//! returned command. `a_stray_variable_on_the_machine_does_not_reach_started_processes` (in
//! `support/mod.rs`) proves it for both binaries.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

/// The real `kscale` binary; start it with [`kscale`].
pub const KSCALE: &str = env!("CARGO_BIN_EXE_kscale");

/// The only variables a child inherits from the test process: none of them is a setting of
/// kscale or of the server.
pub const INHERITED: &[&str] = &["PATH", "HOME", "LLVM_PROFILE_FILE"];

/// Clears `cmd`'s environment down to [`INHERITED`].
pub fn clean_env(cmd: &mut Command) -> &mut Command {
    cmd.env_clear();
    for name in INHERITED {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd
}

/// `program` (a wrapper such as `prlimit`, or a binary) with the clean environment.
pub fn clean_command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    clean_env(&mut cmd);
    cmd
}

/// The real `kscale` binary, run in `dir` (the working directory, where kscale would find a
/// `kscale.toml`) with stdin closed and the clean environment; `KUBECONFIG` names a file in
/// `dir` that does not exist, so no machine's cluster is reached unless the test sets its own.
pub fn kscale(dir: &Path) -> Command {
    let mut cmd = clean_command(KSCALE);
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .env("KUBECONFIG", dir.join("no-kubeconfig"));
    cmd
}
