//! A `kubectl port-forward` child process that lives as long as its guard.
//!
//! Caveat for the load: kubectl forwards a Service to ONE of its pods, chosen when the forward
//! starts, so load sent through it never spreads over pods whatever `--reconnect-every` says.
//! To watch the HPA balance load, prefer the NodePort URL (`minikube service --url`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Child;

use super::{Cmd, Runner};

/// What to forward.
#[derive(Debug, Clone)]
pub struct PortForwardSpec {
    /// The kubectl binary.
    pub kubectl: PathBuf,
    /// `--context`, when pinned.
    pub context: Option<String>,
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub service: String,
    /// Port of the Service.
    pub remote_port: u16,
}

/// A running port-forward; dropping it kills kubectl. Started through [`Runner::spawn`], the
/// tools layer's one place that starts long-lived processes.
#[derive(Debug)]
pub struct PortForward {
    child: Child,
    /// `http://127.0.0.1:PORT`, the local end.
    pub local_url: String,
}

impl PortForward {
    /// Starts `kubectl port-forward` on a free local port of 127.0.0.1 and waits (up to
    /// `timeout`) for kubectl to say where it listens.
    pub async fn open(
        runner: &Runner,
        spec: &PortForwardSpec,
        timeout: Duration,
    ) -> anyhow::Result<PortForward> {
        let mut cmd = Cmd::new(&spec.kubectl.display().to_string());
        if let Some(context) = &spec.context {
            cmd = cmd.args(["--context", context]);
        }
        let cmd = cmd
            .args([
                "--namespace",
                &spec.namespace,
                "port-forward",
                "--address",
                "127.0.0.1",
            ])
            .arg(format!("service/{}", spec.service))
            .arg(format!(":{}", spec.remote_port));
        let mut child = runner.spawn(&cmd)?;
        let stderr_text = Arc::new(Mutex::new(String::new()));
        let mut stderr_task = None;
        if let Some(stderr) = child.stderr.take() {
            let sink = stderr_text.clone();
            stderr_task = Some(tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                    if s.len() < 8192 {
                        s.push_str(&line);
                        s.push('\n');
                    }
                }
            }));
        }
        // On failure, what kubectl said is the explanation: let the reader finish first.
        let stderr_done = || async {
            if let Some(task) = stderr_task {
                let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
            }
        };
        let Some(stdout) = child.stdout.take() else {
            anyhow::bail!("kubectl port-forward: no stdout pipe");
        };
        let mut lines = BufReader::new(stdout).lines();
        let found = tokio::time::timeout(timeout, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(port) = forwarded_port(&line) {
                    return Some(port);
                }
            }
            None
        })
        .await;
        let describe = || {
            let err = stderr_text
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            format!(
                "kubectl port-forward to service/{} port {} in namespace {}{}",
                spec.service,
                spec.remote_port,
                spec.namespace,
                if err.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", err.trim())
                }
            )
        };
        match found {
            Ok(Some(port)) => {
                // kubectl prints a line per connection: keep reading so it never blocks.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                Ok(PortForward {
                    child,
                    local_url: format!("http://127.0.0.1:{port}"),
                })
            }
            Ok(None) => {
                let _ = child.wait().await;
                stderr_done().await;
                anyhow::bail!("{} exited before forwarding", describe())
            }
            Err(_) => {
                let _ = child.kill().await;
                stderr_done().await;
                anyhow::bail!(
                    "{} did not start forwarding within {}; is the service's pod ready?",
                    describe(),
                    humantime::format_duration(timeout)
                )
            }
        }
    }

    /// Stops kubectl and waits for it to exit.
    pub async fn close(mut self) {
        let _ = self.child.kill().await;
    }

    /// The process id of kubectl (for tests).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// The local port of kubectl's `Forwarding from 127.0.0.1:PORT -> REMOTE` line.
fn forwarded_port(line: &str) -> Option<u16> {
    let rest = line.trim().strip_prefix("Forwarding from 127.0.0.1:")?;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_forwarding_line() {
        assert_eq!(
            forwarded_port("Forwarding from 127.0.0.1:41234 -> 3000"),
            Some(41234)
        );
        assert_eq!(forwarded_port("Forwarding from [::1]:41234 -> 3000"), None);
        assert_eq!(forwarded_port("Handling connection for 41234"), None);
    }
}
