//! Fixtures more than one test area uses.

use std::net::TcpListener;

/// A listening address that nothing serves: a connection to it waits in the backlog, so a test
/// can show that a command (a `--dry-run`) connected to nothing.
pub struct Untouched {
    listener: TcpListener,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Untouched {
    /// Binds a free port on 127.0.0.1.
    pub fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        Self { listener, url }
    }

    /// Panics when anything connected (call it once the command has exited).
    pub fn assert_untouched(&self, what: &str) {
        match self.listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("{what} connected to the service: {other:?}"),
        }
    }
}

/// A kubeconfig whose only context, `context`, reaches the API server at `server` (a URL) with
/// no credentials, in `namespace` when given.
pub fn kubeconfig(context: &str, server: &str, namespace: Option<&str>) -> String {
    let namespace = namespace.map_or(String::new(), |ns| format!("    namespace: {ns}\n"));
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {context}\n  cluster:\n    server: {server}\ncontexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: {context}\n{namespace}users:\n- name: {context}\n  user: {{}}\ncurrent-context: {context}\n"
    )
}
