//! `cargo xtask`: developer automation. `cargo xtask ci` is the test command of the project.

mod bench_faults;
mod bench_minikube;
mod bench_server;
mod ci;
mod controlplane;
mod deps;
mod files;
mod kit;
mod process;
mod up;
mod upstream;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  up             the whole stack (`kscale up`): with this machine's Docker, minikube and helm, or
                 on the offline kit (built once) when they are missing (run `cargo xtask up --help`)
  kscale         any kscale command the same way (e.g. `cargo xtask kscale teardown`)
  ci             fmt check, clippy -D warnings and every test; installs what the tests need
  controlplane   up|down|status|build: a real Kubernetes control plane (run `cargo xtask controlplane help`)
  kit            build|status|env|engine|clean: real minikube offline (run `cargo xtask kit help`)
  deps           install what the tests need (prometheus, promtool, wrk) when missing
  bench-server   benchmark the release kscale-server with wrk and print a table [--seconds N]
  bench-minikube the real `kscale up` on the offline minikube kit, timed against its goals (~25 min)
  bench-faults   the same run with six faults (or `bench-faults node_restart,drain`) during a steady load, as a table against the goals
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("up") => up::up(&args[1..]),
        Some("kscale") => up::kscale(&args[1..]),
        Some("ci") => ci::ci(&args[1..]),
        Some("controlplane") => controlplane::controlplane(&args[1..]),
        Some("kit") => kit::kit(&args[1..]),
        Some("deps") => deps::ensure_test_deps(),
        Some("bench-server") => bench_server::bench_server(&args[1..]),
        Some("bench-minikube") => bench_minikube::bench_minikube(&args[1..]),
        Some("bench-faults") => bench_faults::bench_faults(&args[1..]),
        Some("help") | Some("--help") | Some("-h") | None => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprint!("error: unknown task `{other}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's directory).
pub fn project_root() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    dir.parent().unwrap_or(dir).to_path_buf()
}

/// `$<env>` if set, else `$XDG_CACHE_HOME/kscale/<leaf>`, else `~/.cache/kscale/<leaf>`.
pub fn cache_dir(env: &str, leaf: &str) -> anyhow::Result<std::path::PathBuf> {
    use std::path::PathBuf;
    if let Some(dir) = std::env::var_os(env) {
        return Ok(PathBuf::from(dir));
    }
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".cache"),
            None => anyhow::bail!(
                "neither {env}, XDG_CACHE_HOME nor HOME is set: set one to choose the cache folder"
            ),
        },
    };
    Ok(base.join("kscale").join(leaf))
}

/// Runs a command in the project root, echoing it, and fails with its exit status.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    process::run(
        std::process::Command::new(program)
            .args(args)
            .current_dir(project_root()),
    )
}
