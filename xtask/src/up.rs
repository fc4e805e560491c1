//! `cargo xtask up` and `cargo xtask kscale`: the README's first command. It runs the real
//! `kscale` (built with `cargo run --release`) with the machine's own Docker, minikube, helm and
//! kubectl when they are all there and the engine answers; otherwise with the offline kit, built
//! once (about 40 minutes cold, seconds warm), whose settings (`cargo xtask kit env`) make the
//! same `kscale up` create its cluster from the kit's images. Nothing else differs: `kscale`
//! checks its configuration and tools itself and reports every step.

use std::process::Command;
use std::time::Duration;

use crate::kit;
use crate::process;

const USAGE: &str = "\
usage: cargo xtask up [--kit|--no-kit] [KSCALE UP ARGUMENTS...]
       cargo xtask kscale [--kit|--no-kit] COMMAND [ARGUMENTS...]

`up` runs `kscale up` (the whole stack). It uses this machine's Docker engine, minikube, helm and
kubectl when all of them are there; when one is missing it builds the offline kit once (`cargo
xtask kit build`: the same tools from pinned sources, a Docker engine of its own, every image) and
runs `kscale up` on it. `kscale` runs any other command (metrics, teardown, load, ...) the same
way, so it reaches the cluster `up` made.

options:
  --kit      use the offline kit even when the machine has the tools
  --no-kit   use the machine's tools; fail (with kscale's own list of what is missing) otherwise

With the kit, the pinned charts are read from ../shared/charts when that folder holds them (the
chart repositories may be unreachable offline); `--set monitoring.chart_source=DIR` overrides it.
In a shell, `eval \"$(cargo xtask kit env)\"` gives kscale, minikube, kubectl and helm the same
settings.
";

/// The programs `kscale up` drives on the machine (kscale's preflight checks their versions).
const TOOLS: [&str; 4] = ["docker", "minikube", "helm", "kubectl"];

/// How long `docker info` may take before the engine counts as not answering.
const ENGINE_PROBE: Duration = Duration::from_secs(20);

/// The chart kscale installs first, whose package marks a folder of the pinned charts.
const PINNED_CHART: &str = "kube-prometheus-stack-88.5.3.tgz";

/// Which tools a `kscale` run uses.
#[derive(Debug, PartialEq, Eq)]
enum Tools {
    /// The machine's own.
    Machine,
    /// The offline kit; the reason is shown.
    Kit(String),
}

/// The choice: `forced` (`--kit` true, `--no-kit` false) wins; otherwise the kit when something
/// is `missing` (what the machine lacks, in words).
fn choose(forced: Option<bool>, missing: &[String]) -> Tools {
    match forced {
        Some(true) => Tools::Kit("--kit".into()),
        Some(false) => Tools::Machine,
        None if missing.is_empty() => Tools::Machine,
        None => Tools::Kit(format!("this machine has no {}", missing.join(", no "))),
    }
}

/// What the machine lacks of [`TOOLS`], in words (a missing program, an engine that does not
/// answer).
fn missing_tools() -> Vec<String> {
    let mut missing: Vec<String> = TOOLS
        .iter()
        .filter(|program| !crate::deps::have(program))
        .map(|program| format!("`{program}`"))
        .collect();
    if crate::deps::have("docker") {
        let answers = process::exec(
            Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]),
            process::Options {
                deadline: Some(ENGINE_PROBE),
                ..Default::default()
            },
        );
        if answers.is_err() {
            missing.push("Docker engine answering `docker info`".into());
        }
    }
    missing
}

/// `--kit`/`--no-kit` taken out of `args`; the rest is kscale's.
fn split_options(args: &[String]) -> anyhow::Result<(Option<bool>, Vec<String>)> {
    let mut forced = None;
    let mut rest = Vec::new();
    for arg in args {
        match arg.as_str() {
            "--kit" | "--no-kit" => {
                let this = arg == "--kit";
                if forced.is_some_and(|before| before != this) {
                    anyhow::bail!("--kit and --no-kit contradict each other: give one of them");
                }
                forced = Some(this);
            }
            _ => rest.push(arg.clone()),
        }
    }
    Ok((forced, rest))
}

/// Whether the caller chose where the charts come from: in the arguments (`--set
/// monitoring.chart_source=...`) or in `from_env` (`KSCALE_MONITORING_CHART_SOURCE`).
fn chart_source_given(args: &[String], from_env: Option<std::ffi::OsString>) -> bool {
    from_env.is_some()
        || args.iter().any(|a| {
            a.trim_start_matches("--set=")
                .starts_with("monitoring.chart_source=")
        })
}

/// The folder of the pinned packaged charts beside the repository, when it is there.
fn shared_charts() -> Option<std::path::PathBuf> {
    let dir = crate::project_root().join("../shared/charts");
    dir.join(PINNED_CHART)
        .is_file()
        .then(|| dir.canonicalize().unwrap_or(dir))
}

/// `cargo xtask up ARGS`: `kscale up ARGS` on the machine's tools or the kit.
pub fn up(args: &[String]) -> anyhow::Result<()> {
    if help_asked(args) {
        print!("{USAGE}");
        return Ok(());
    }
    let mut all = vec!["up".to_string()];
    all.extend_from_slice(args);
    kscale(&all)
}

fn help_asked(args: &[String]) -> bool {
    matches!(
        args.first().map(String::as_str),
        Some("help") | Some("--help") | Some("-h")
    )
}

/// `cargo xtask kscale COMMAND ARGS`: one `kscale` run on the machine's tools or the kit.
pub fn kscale(args: &[String]) -> anyhow::Result<()> {
    let (forced, args) = split_options(args)?;
    if args.is_empty() || help_asked(&args) {
        print!("{USAGE}");
        return Ok(());
    }
    let is_up = args.first().is_some_and(|c| c == "up");
    // The machine is probed only when the caller did not choose.
    let missing = if forced.is_some() {
        Vec::new()
    } else {
        missing_tools()
    };
    let tools = choose(forced, &missing);
    let mut cmd = Command::new("cargo");
    cmd.args([
        "run",
        "--release",
        // Not quiet: a first build takes minutes, and cargo's lines are its progress.
        "--package",
        "kscale",
        "--bin",
        "kscale",
        "--",
    ])
    .current_dir(crate::project_root());
    match &tools {
        Tools::Machine => eprintln!("xtask: running kscale with this machine's tools"),
        Tools::Kit(why) => {
            eprintln!("xtask: {why}: kscale runs on the offline kit (cargo xtask kit)");
            let layout = kit::Layout::from_env()?;
            // `up` builds what is missing (once); other commands only need what `up` built.
            let mode = if is_up {
                kit::Mode::Build
            } else {
                kit::Mode::Check
            };
            let built = kit::build(&layout, mode)?;
            for (name, value, _) in kit::env_vars(&layout, &built) {
                cmd.env(name, value);
            }
            let from_env = std::env::var_os("KSCALE_MONITORING_CHART_SOURCE");
            if !chart_source_given(&args, from_env)
                && let Some(charts) = shared_charts()
            {
                eprintln!(
                    "xtask: the pinned charts come from {} (monitoring.chart_source)",
                    charts.display()
                );
                // A variable, not an argument: it applies wherever the subcommand is.
                cmd.env("KSCALE_MONITORING_CHART_SOURCE", charts);
            }
        }
    }
    cmd.args(&args);
    process::run_attached(&mut cmd)?;
    if is_up && matches!(tools, Tools::Kit(_)) {
        eprintln!(
            "xtask: the stack runs on the kit; `cargo xtask kscale metrics`, `cargo xtask kscale \
             teardown`, or, in a shell, `eval \"$(cargo xtask kit env)\"` for kscale, kubectl, \
             minikube and helm"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn the_kit_is_chosen_when_a_tool_is_missing_or_asked_for() {
        assert_eq!(choose(None, &[]), Tools::Machine);
        assert_eq!(
            choose(None, &strings(&["`minikube`", "`helm`"])),
            Tools::Kit("this machine has no `minikube`, no `helm`".into())
        );
        assert_eq!(choose(Some(true), &[]), Tools::Kit("--kit".into()));
        assert_eq!(
            choose(Some(false), &strings(&["`minikube`"])),
            Tools::Machine
        );
    }

    #[test]
    fn kit_options_are_taken_out_and_contradictions_refused() {
        let (forced, rest) =
            split_options(&strings(&["--kit", "up", "--set", "app.workers=2"])).expect("split");
        assert_eq!(forced, Some(true));
        assert_eq!(rest, strings(&["up", "--set", "app.workers=2"]));
        let (forced, rest) = split_options(&strings(&["metrics"])).expect("split");
        assert_eq!((forced, rest), (None, strings(&["metrics"])));
        let err = split_options(&strings(&["--kit", "--no-kit"])).expect_err("contradiction");
        assert!(err.to_string().contains("give one of them"), "{err}");
    }

    #[test]
    fn a_chart_source_in_the_arguments_or_environment_is_the_callers() {
        let given = strings(&["up", "--set", "monitoring.chart_source=/charts"]);
        assert!(chart_source_given(&given, None));
        let inline = strings(&["up", "--set=monitoring.chart_source=/charts"]);
        assert!(chart_source_given(&inline, None));
        let other = strings(&["up", "--set", "app.workers=2"]);
        assert!(!chart_source_given(&other, None));
        assert!(chart_source_given(&other, Some("/charts".into())));
    }
}
