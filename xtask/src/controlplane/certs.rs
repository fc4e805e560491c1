//! Certificates of the harness, made with the openssl CLI: a cluster CA (serving certificate of
//! the API server, the admin client), a separate front-proxy CA for the aggregation layer (the
//! API server's proxy client certificate, trusted by aggregated API servers through
//! `--requestheader-client-ca-file`), and the service-account signing key.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process;

use super::netns::net;

/// Paths of every file the components need.
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// The files under `dir` (made by [`generate`]).
    pub fn at(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }
    /// A file of the PKI folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    /// A file of the PKI folder as a string, for command-line flags.
    pub fn arg(&self, name: &str) -> String {
        self.file(name).to_string_lossy().into_owned()
    }
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    process::exec(
        Command::new("openssl").args(args).current_dir(dir),
        process::Options {
            missing: Some("install the openssl package"),
            ..process::Options::default()
        },
    )
    .map(drop)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

fn ca(dir: &Path, name: &str, common_name: &str) -> anyhow::Result<()> {
    openssl(dir, &["genrsa", "-out", &format!("{name}.key"), "2048"])?;
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            &format!("/CN={common_name}"),
            "-days",
            "3650",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
            "-out",
            &format!("{name}.crt"),
        ],
    )
}

/// A leaf certificate `name.crt`/`name.key` signed by `ca`, with the given subject and extensions.
fn leaf(dir: &Path, ca: &str, name: &str, subject: &str, extensions: &str) -> anyhow::Result<()> {
    openssl(dir, &["genrsa", "-out", &format!("{name}.key"), "2048"])?;
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            subject,
            "-out",
            &format!("{name}.csr"),
        ],
    )?;
    write(&dir.join(format!("{name}.ext")), extensions)?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "365",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.crt"),
        ],
    )
}

const CLIENT: &str = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n";

/// Generates every certificate and key under `dir`.
pub fn generate(dir: &Path) -> anyhow::Result<Pki> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    ca(dir, "ca", "kscale-harness-ca")?;
    let (ns_ip, service_ip) = (&net().ns_ip, &net().kubernetes_service_ip);
    let serving = format!(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n\
         subjectAltName=IP:{ns_ip},IP:{service_ip},IP:127.0.0.1,DNS:localhost,DNS:kubernetes,\
         DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
    );
    leaf(dir, "ca", "apiserver", "/CN=kube-apiserver", &serving)?;
    // system:masters: the harness is a test cluster, and one identity keeps the components simple.
    leaf(
        dir,
        "ca",
        "admin",
        "/O=system:masters/CN=kscale-harness-admin",
        CLIENT,
    )?;
    ca(dir, "front-proxy-ca", "kscale-harness-front-proxy-ca")?;
    leaf(
        dir,
        "front-proxy-ca",
        "front-proxy-client",
        "/CN=front-proxy-client",
        CLIENT,
    )?;
    openssl(dir, &["genrsa", "-out", "sa.key", "2048"])?;
    openssl(dir, &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"])?;
    Ok(Pki::at(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serving_certificate_names_the_namespace_address_and_verifies_against_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let pki = generate(dir.path()).unwrap();
        let text = process::output(
            Command::new("openssl")
                .args(["x509", "-noout", "-text", "-in"])
                .arg(pki.file("apiserver.crt")),
        )
        .unwrap();
        assert!(
            text.contains(&format!("IP Address:{}", net().ns_ip)),
            "{text}"
        );
        for (ca, leaf) in [
            ("ca.crt", "apiserver.crt"),
            ("ca.crt", "admin.crt"),
            ("front-proxy-ca.crt", "front-proxy-client.crt"),
        ] {
            let verified = process::succeeds(
                Command::new("openssl")
                    .arg("verify")
                    .arg("-CAfile")
                    .arg(pki.file(ca))
                    .arg(pki.file(leaf)),
            );
            assert!(verified, "{leaf} does not verify against {ca}");
        }
        let wrong = process::succeeds(
            Command::new("openssl")
                .arg("verify")
                .arg("-CAfile")
                .arg(pki.file("front-proxy-ca.crt"))
                .arg(pki.file("admin.crt")),
        );
        assert!(!wrong);
    }
}
