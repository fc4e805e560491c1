//! Integration tests of `kscale-server`: the real binary as a child process, real HTTP on
//! 127.0.0.1. Inference times are short; timing assertions are lower bounds or generous.

mod api;
mod config;
mod connections;
mod hostile;
mod openai;
mod queueing;
mod shutdown;
mod support;
