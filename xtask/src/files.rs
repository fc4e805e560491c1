//! Files and their hashes: folder and file helpers whose errors name the path, and the SHA-256
//! content keys of caches and pinned downloads (through `sha2`, never a `sha256sum` process).

use std::io::Read as _;
use std::path::Path;

use sha2::{Digest, Sha256};

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

/// Feeds a file's contents to `hash` (streamed: binaries are large).
fn hash_file(hash: &mut Sha256, path: &Path) -> anyhow::Result<()> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            return Ok(());
        }
        hash.update(&buf[..n]);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a file as 64 hex digits (what `sha256sum` prints).
pub fn sha256(path: &Path) -> anyhow::Result<String> {
    let mut hash = Sha256::new();
    hash_file(&mut hash, path)?;
    Ok(hex(&hash.finalize()))
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

    /// Adds a file's contents.
    pub fn file(mut self, path: &Path) -> anyhow::Result<Self> {
        hash_file(&mut self.0, path)?;
        Ok(self)
    }

    /// The first 16 hex digits.
    pub fn finish(self) -> String {
        hex(&self.0.finalize()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(Key::default().text("a").finish().len(), 16);
    }

    #[test]
    fn sha256_is_what_sha256sum_prints() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("abc");
        std::fs::write(&file, "abc").unwrap();
        assert_eq!(
            sha256(&file).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(sha256(&dir.path().join("absent")).is_err());
    }
}
