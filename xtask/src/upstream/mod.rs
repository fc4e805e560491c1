//! The upstream programs both the kit and the control plane use: the pinned Go wrapper modules
//! (`modules`), their builds into the shared Go cache (`gobuild`) and the pinned helm (`helm`).
//! This module imports neither `kit` nor `controlplane`; both import it.

pub mod gobuild;
pub mod helm;
pub mod modules;
