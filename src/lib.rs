//! kscale: an inference service that autoscales on a real inference metric, from a laptop
//! (minikube) to any cluster. See `ARCHITECTURE.md` for the map of this crate.

pub mod cli;
pub mod config;
pub mod dashboard;
pub mod load;
pub mod plot;
pub mod timeline;
