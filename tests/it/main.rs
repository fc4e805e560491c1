//! kscale's integration tests: one test binary (faster to link), one module per area.

mod cli_smoke;
mod metrics_cmd;
mod pipeline;
mod render;
mod support;
