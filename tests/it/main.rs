//! kscale's integration tests: one test binary (faster to link), one module per area.

mod cli_smoke;
mod controlplane;
mod metrics_cmd;
mod orchestration;
mod pipeline;
mod render;
mod support;
