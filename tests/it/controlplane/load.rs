//! A closed-loop load on the app's pods: `clients` threads, each sending one `POST /infer` at a
//! time to the Running pods' `<pod IP>:3000` in turn (the pod list refreshed every second, as a
//! Service's endpoints would be). Stops on drop; every loop is bounded by `limit`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running load.
pub struct Load {
    stop: Arc<AtomicBool>,
    /// Answers with status 200.
    pub ok: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

/// One `POST /infer` (no body) to `addr`: whether it was answered with 200.
fn infer(addr: &str) -> bool {
    let Ok(sock) = addr.parse() else { return false };
    let timeouts = (Duration::from_secs(2), Duration::from_secs(60));
    matches!(
        crate::support::http::blocking_request(sock, "POST", "/infer", None, timeouts),
        Ok((200, _))
    )
}

impl Load {
    /// Starts `clients` clients over the addresses `targets` returns (called once a second).
    pub fn start(
        clients: usize,
        limit: Duration,
        targets: impl Fn() -> Vec<String> + Send + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let pods: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(targets()));
        let deadline = Instant::now() + limit;
        let mut threads = Vec::new();
        {
            let (stop, pods) = (stop.clone(), pods.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let fresh = targets();
                    if let Ok(mut p) = pods.lock() {
                        *p = fresh;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }));
        }
        for client in 0..clients {
            let (stop, pods, ok) = (stop.clone(), pods.clone(), ok.clone());
            threads.push(std::thread::spawn(move || {
                let mut turn = client;
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let addr = pods
                        .lock()
                        .ok()
                        .and_then(|p| (!p.is_empty()).then(|| p[turn % p.len()].clone()));
                    turn += 1;
                    match addr {
                        Some(addr) if infer(&addr) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        // No pod yet, or one going away: back off briefly.
                        _ => std::thread::sleep(Duration::from_millis(200)),
                    }
                }
            }));
        }
        Self { stop, ok, threads }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
