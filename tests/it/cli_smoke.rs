//! The binary starts and its clap definition is consistent.

use clap::CommandFactory as _;

#[test]
fn clap_definition_is_consistent() {
    kscale::cli::Cli::command().debug_assert();
}
