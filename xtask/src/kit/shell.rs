//! Running the host programs the kit needs, with errors that carry the command, its status and
//! the tail of its stderr; hashing inputs for cache keys.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

/// Debian packages the kit runs on the host, each with a program that proves it is installed.
const HOST_PACKAGES: &[(&str, &str)] = &[
    ("debootstrap", "debootstrap"),
    ("dockerd", "docker.io"),
    ("jq", "jq"),
    ("iptables", "iptables"),
    ("gcc", "gcc"),
];

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        if arg.contains(' ') {
            text.push_str(&format!(" '{arg}'"));
        } else {
            text.push(' ');
            text.push_str(&arg);
        }
    }
    text
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs `cmd` to completion and returns its stdout; fails with the command, status and stderr.
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let shown = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("cannot start `{shown}`: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "`{shown}` failed with {}:\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 20)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd` with its output shown (long steps), failing with the command and status.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = describe(cmd);
    eprintln!("$ {shown}");
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .map_err(|e| anyhow::anyhow!("cannot start `{shown}`: {e}"))?;
    if !status.success() {
        anyhow::bail!("`{shown}` failed with {status}");
    }
    Ok(())
}

/// Runs `producer | consumer`, failing with whichever side failed. Both are taken by value:
/// a command keeps its stdin handle until dropped, and a pipe end left open in this process
/// would keep the producer blocked forever if the consumer stopped early.
pub fn pipe(mut producer: Command, mut consumer: Command) -> anyhow::Result<String> {
    let (p, c) = (describe(&producer), describe(&consumer));
    eprintln!("$ {p} | {c}");
    let mut first = producer
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start `{p}`: {e}"))?;
    drop(producer);
    let stdout = first
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("`{p}` has no stdout"))?;
    // Read the producer's stderr meanwhile: a full stderr pipe would block it.
    let first_err = first.stderr.take().map(|mut err| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        })
    });
    consumer
        .stdin(Stdio::from(stdout))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let second = consumer
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start `{c}`: {e}"));
    drop(consumer);
    let second = match second {
        Ok(child) => child.wait_with_output(),
        Err(e) => {
            let _ = first.kill();
            let _ = first.wait();
            return Err(e);
        }
    }
    .map_err(|e| anyhow::anyhow!("cannot wait for `{c}`: {e}"))?;
    if !second.status.success() {
        let _ = first.kill();
    }
    let status = first
        .wait()
        .map_err(|e| anyhow::anyhow!("cannot wait for `{p}`: {e}"))?;
    let first_err = first_err.and_then(|t| t.join().ok()).unwrap_or_default();
    if !second.status.success() {
        anyhow::bail!(
            "`{c}` failed with {}:\n{}",
            second.status,
            tail(&String::from_utf8_lossy(&second.stderr), 20)
        );
    }
    if !status.success() {
        anyhow::bail!("`{p}` failed with {status}:\n{}", tail(&first_err, 20));
    }
    Ok(String::from_utf8_lossy(&second.stdout).into_owned())
}

/// Installs the Debian packages the kit runs on the host when they are missing.
pub fn ensure_host_packages() -> anyhow::Result<()> {
    crate::deps::ensure_packages(HOST_PACKAGES)
}

/// Removes a folder tree if it exists.
pub fn remove_tree(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => anyhow::bail!("cannot remove {}: {e}", path.display()),
    }
}

/// Creates a folder and its parents.
pub fn mkdir(path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))
}

/// Writes a file, creating its folder.
pub fn write(path: &Path, contents: impl AsRef<[u8]>) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        mkdir(parent)?;
    }
    std::fs::write(path, contents)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// Reads a text file.
pub fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}

/// Makes a file executable.
pub fn chmod_x(path: &Path) -> anyhow::Result<()> {
    chmod(path, 0o755)
}

/// Sets a file's permission bits.
pub fn chmod(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| anyhow::anyhow!("cannot chmod {}: {e}", path.display()))
}

/// A content hash builder for cache keys.
#[derive(Default)]
pub struct Key(Sha256);

impl Key {
    /// Adds text.
    pub fn text(mut self, text: &str) -> Self {
        self.0.update((text.len() as u64).to_le_bytes());
        self.0.update(text.as_bytes());
        self
    }

    /// Adds a file's contents (streamed: binaries are large).
    pub fn file(mut self, path: &Path) -> anyhow::Result<Self> {
        let mut file = std::fs::File::open(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            self.0.update(&buf[..n]);
        }
        Ok(self)
    }

    /// The first 16 hex digits.
    pub fn finish(self) -> String {
        self.0
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_command_reports_command_status_and_stderr() {
        let err = output(Command::new("sh").args(["-c", "echo boom >&2; exit 3"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sh -c 'echo boom >&2; exit 3'"), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.contains("boom"), "{err}");
    }

    #[test]
    fn pipes_report_the_failing_side() {
        let mut printf = Command::new("printf");
        printf.arg("a\\nb\\n");
        let mut wc = Command::new("wc");
        wc.arg("-l");
        let out = pipe(printf, wc).unwrap();
        assert_eq!(out.trim(), "2");
        let err = pipe(Command::new("false"), Command::new("cat"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("`false` failed"), "{err}");
        // A consumer that stops early does not leave the producer blocked.
        let mut yes = Command::new("yes");
        yes.arg("y");
        let mut head = Command::new("sh");
        head.args(["-c", "head -c 10 >/dev/null; exit 4"]);
        let err = pipe(yes, head).unwrap_err().to_string();
        assert!(err.contains("exit status: 4"), "{err}");
    }

    #[test]
    fn keys_change_with_content() {
        assert_eq!(
            Key::default().text("a").finish(),
            Key::default().text("a").finish()
        );
        assert_ne!(
            Key::default().text("a").finish(),
            Key::default().text("b").finish()
        );
        assert_ne!(
            Key::default().text("ab").text("c").finish(),
            Key::default().text("a").text("bc").finish()
        );
    }
}
