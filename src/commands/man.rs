//! `kscale man`: the man page (roff) generated from the clap definitions, every subcommand
//! included, so it never falls behind the flags.

use clap::CommandFactory as _;

use crate::cli::Cli;
use crate::ui::Ui;

/// The man page: `kscale(1)` followed by a section per subcommand with its flags.
pub fn page() -> anyhow::Result<String> {
    let mut command = Cli::command();
    command.build();
    let mut out = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut out)?;
    for sub in command.get_subcommands() {
        // Each subcommand as its own section, titled like `man git-commit` would be.
        let name = format!("kscale-{}", sub.get_name());
        let sub = sub.clone().name(name);
        out.extend_from_slice(b"\n");
        clap_mangen::Man::new(sub).render(&mut out)?;
    }
    Ok(String::from_utf8(out)?)
}

/// Prints the page (as `{"man"}` with `--output json`); `kscale man | man -l -` shows it.
pub fn exec(ui: &Ui) -> anyhow::Result<u8> {
    let text = page()?;
    ui.result_json(&serde_json::json!({ "man": text }));
    ui.result_raw(&text)?;
    Ok(super::SUCCESS)
}
