//! kscale's integration tests: one test binary (faster to link), one module per area.

mod cli_conventions;
mod cli_smoke;
mod controlplane;
mod dashboard;
mod hostile_input;
mod llama_cpp;
mod load;
mod load_plot_cli;
mod metrics_cmd;
mod orchestration;
mod pipeline;
mod plot;
mod real_minikube;
mod render;
mod servers_chain;
mod sim_validation;
mod support;
mod tidy;
