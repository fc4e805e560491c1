//! `controlplane exposition-double <server> --bind <address> --port <port>`: the exposition
//! double as a process, for the pod supervisor to run per kwok pod in place of a real vLLM, TGI,
//! Triton or llama.cpp server (none of which runs on this machine). It serves only
//! `GET /metrics` with the server's real exposition (the same text as the tests' in-process
//! double, `tests/it/support/exposition_double/text.rs`), its values read once from the pod's
//! environment: `EXPOSITION_DOUBLE_WAITING`, `EXPOSITION_DOUBLE_RUNNING`,
//! `EXPOSITION_DOUBLE_FINISHED`, `EXPOSITION_DOUBLE_SECONDS` (0 when unset). It is not a server:
//! every other path is 404.

#[path = "../../../tests/it/support/exposition_double/text.rs"]
#[allow(dead_code)]
mod text;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::time::Duration;

fn value(name: &str) -> anyhow::Result<f64> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("{name}={v:?} is not a number: {e}")),
        Err(_) => Ok(0.0),
    }
}

/// Parses `<server> --bind <address> --port <port>` and serves until killed.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let usage = "usage: controlplane exposition-double <vllm|tgi|triton|llamacpp> --bind <address> --port <port>";
    let server = args
        .first()
        .and_then(|s| text::DoubleOf::parse(s))
        .ok_or_else(|| anyhow::anyhow!("{usage}"))?;
    let (mut bind, mut port) = (None, None);
    for pair in super::flag_values(&args[1..]) {
        let (flag, v) = pair.map_err(|e| anyhow::anyhow!("{e}\n{usage}"))?;
        match flag {
            "--bind" => bind = Some(v.clone()),
            "--port" => port = Some(v.clone()),
            other => anyhow::bail!("unknown option `{other}`\n{usage}"),
        }
    }
    let (Some(bind), Some(port)) = (bind, port) else {
        anyhow::bail!("{usage}");
    };
    let values = text::Values {
        waiting: value("EXPOSITION_DOUBLE_WAITING")?,
        running: value("EXPOSITION_DOUBLE_RUNNING")?,
        finished: value("EXPOSITION_DOUBLE_FINISHED")?,
        seconds: value("EXPOSITION_DOUBLE_SECONDS")?,
    };
    let body = text::exposition(server, &values);
    let listener = TcpListener::bind(format!("{bind}:{port}"))
        .map_err(|e| anyhow::anyhow!("cannot listen on {bind}:{port}: {e}"))?;
    eprintln!("exposition double of {server:?} on {bind}:{port}: {values:?}");
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
        let mut reader = BufReader::new(&stream);
        let mut first = String::new();
        if reader.read_line(&mut first).is_err() {
            continue;
        }
        // Drain the request head; there is no body to read on a GET.
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear();
        }
        let path = first.split_whitespace().nth(1).unwrap_or_default();
        let path = path.split('?').next().unwrap_or_default();
        let (status, kind, text) = if first.starts_with("GET ") && path == "/metrics" {
            ("200 OK", text::CONTENT_TYPE, body.as_str())
        } else {
            (
                "404 Not Found",
                "text/plain",
                "not found: an exposition double serves only /metrics\n",
            )
        };
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        );
    }
    Ok(())
}
