//! kscale: an inference service that autoscales on a real inference metric, from a laptop
//! (minikube) to any cluster. See `ARCHITECTURE.md` for the map of this crate.

pub mod app;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod dashboard;
pub mod downsample;
pub mod duration;
pub mod hpa;
pub mod kubeapi;
pub mod load;
pub mod loadprofile;
pub mod manifest;
pub mod metrics;
pub mod monitoring;
pub mod plot;
pub mod preflight;
pub mod quantity;
pub mod render;
pub mod session;
pub mod simulate;
pub mod timeline;
pub mod tools;
pub mod ui;

/// An error in what the user gave (flags, files, profiles) found after parsing; the binary exits
/// with code 2 for it, as for a configuration error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Whether `e` (or anything it wraps) is [`BadInput`].
pub fn is_bad_input(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<BadInput>()) || e.downcast_ref::<BadInput>().is_some()
}

/// Marks `e` as bad input (exit 2), keeping its whole message.
pub fn bad_input(e: anyhow::Error) -> anyhow::Error {
    if is_bad_input(&e) {
        e
    } else {
        BadInput(format!("{e:#}")).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_found_under_context_and_keeps_the_message() {
        let e = anyhow::Error::new(BadInput("no".into())).context("while reading");
        assert!(is_bad_input(&e));
        let e = bad_input(anyhow::anyhow!("inner").context("outer"));
        assert!(is_bad_input(&e));
        assert_eq!(e.to_string(), "outer: inner");
        assert!(!is_bad_input(&anyhow::anyhow!("a failure")));
    }
}
