//! `kscale completions SHELL`: a completion script generated from the clap definitions, so it
//! never falls behind the flags.

use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionsArgs};
use crate::ui::Ui;

/// The completion script for `shell`.
pub fn script(shell: clap_complete::Shell) -> anyhow::Result<String> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kscale", &mut out);
    Ok(String::from_utf8(out)?)
}

/// Prints the script (as `{"shell", "script"}` with `--output json`).
pub fn exec(ui: &Ui, args: &CompletionsArgs) -> anyhow::Result<u8> {
    let text = script(args.shell)?;
    ui.result_json(&serde_json::json!({ "shell": args.shell.to_string(), "script": text }));
    ui.result_raw(&text)?;
    Ok(super::SUCCESS)
}
