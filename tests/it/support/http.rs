//! The one HTTP client of these tests, for what `kscale load` is not: one HTTP/1.1 request on a
//! fresh connection, answered with the status and the body. [`http_request`] for async tests
//! (hyper); [`blocking_request`] for threads and sync tests (`Connection: close` over a
//! `std::net::TcpStream`, with a chunked body decoded).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;

/// One HTTP/1.1 request on a fresh connection; returns the status and the body.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let answer = http_request_timed(addr, method, path, body).await?;
    Ok((answer.status, answer.body))
}

/// An answer with the client's wall-clock times around it.
pub struct Timed {
    /// The status.
    pub status: u16,
    /// The body.
    pub body: String,
    /// Just before the request was written (connected already).
    pub sent: SystemTime,
    /// Once the whole body was in.
    pub received: SystemTime,
}

/// [`http_request`], timed on the client's wall clock.
pub async fn http_request_timed(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<Timed> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake")?;
    let conn = tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, addr.to_string());
    if body.is_some() {
        req = req.header(http::header::CONTENT_TYPE, "application/json");
    }
    let req = req.body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))?;
    let sent = SystemTime::now();
    let res = sender
        .send_request(req)
        .await
        .with_context(|| format!("{method} {path} on {addr}"))?;
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await?.to_bytes();
    let received = SystemTime::now();
    conn.abort();
    Ok(Timed {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        sent,
        received,
    })
}

/// `GET path`.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    http_request(addr, "GET", path, None).await
}

/// One blocking HTTP/1.1 request with `Connection: close`: connecting takes at most `connect`,
/// each read of the answer at most `read`. The status and the body (a chunked body decoded).
pub fn blocking_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    (connect, read): (Duration, Duration),
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, connect)?;
    s.set_read_timeout(Some(read))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let bad = |what: &str| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what}: {text}"))
    };
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no HTTP answer"))?;
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad("no HTTP/1.1 status"))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

/// The data of a chunked body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest.get(n + 2..).unwrap_or("");
    }
    out
}
