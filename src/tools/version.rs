//! Tool versions: parsing what each tool prints about itself, and the minimums kscale needs.

use std::fmt;

/// A `major.minor.patch` version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch.
    pub patch: u64,
}

impl Version {
    /// A version from its parts.
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Finds the first `vX.Y[.Z]` or `X.Y[.Z]` in `text` (`v1.37.0`, `v3.17.3+ge4da497`,
    /// `Docker version 28.2.2, build e6534b4`, `"gitVersion":"v1.32.4-dispatcher"`).
    pub fn find(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_digit()
                && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'v')
            {
                let rest = &text[i..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                    .unwrap_or(rest.len());
                let parts: Vec<&str> = rest[..end].trim_end_matches('.').split('.').collect();
                if parts.len() >= 2
                    && let (Ok(major), Ok(minor)) = (parts[0].parse(), parts[1].parse())
                {
                    let patch = parts.get(2).and_then(|p| p.parse().ok()).unwrap_or(0);
                    return Some(Self {
                        major,
                        minor,
                        patch,
                    });
                }
                i += end.max(1);
            } else {
                i += 1;
            }
        }
        None
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Oldest minikube with multi-node `image load` into every node and the `sleep` preStop action.
pub const MIN_MINIKUBE: Version = Version::new(1, 33, 0);
/// Oldest helm 3 kscale drives (helm 4 is supported too).
pub const MIN_HELM: Version = Version::new(3, 12, 0);
/// Oldest kubectl (used for port-forwards).
pub const MIN_KUBECTL: Version = Version::new(1, 28, 0);
/// Oldest Docker Engine: minikube's docker driver needs 18.09, and kscale's image build asks for
/// BuildKit explicitly (`DOCKER_BUILDKIT=1`, built into the engine since 18.09 and stable in
/// 20.10), so 23.0's "BuildKit by default" adds nothing kscale needs. 20.10 is Debian 12's
/// `docker.io`, the engine the offline kit runs (`cargo xtask kit`).
pub const MIN_DOCKER: Version = Version::new(20, 10, 0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_versions_in_real_tool_output() {
        let cases = [
            ("v1.37.0", Version::new(1, 37, 0)),
            ("v3.17.3+ge4da497", Version::new(3, 17, 3)),
            ("v4.1.4+g05fa379", Version::new(4, 1, 4)),
            (
                "Docker version 28.2.2, build e6534b4",
                Version::new(28, 2, 2),
            ),
            (
                r#"{"clientVersion":{"major":"1","minor":"32","gitVersion":"v1.32.4-dispatcher"}}"#,
                Version::new(1, 32, 4),
            ),
            (
                "minikube version: v1.36.0\ncommit: f8f52f5de11fc6ad8244afac475e1d0f96841df1-dirty",
                Version::new(1, 36, 0),
            ),
            ("28.2.2", Version::new(28, 2, 2)),
        ];
        for (text, want) in cases {
            assert_eq!(Version::find(text), Some(want), "{text}");
        }
        assert_eq!(Version::find("no version here"), None);
        assert!(Version::new(3, 17, 3) >= MIN_HELM && Version::new(3, 11, 9) < MIN_HELM);
        // Debian 12's docker.io, as its daemon reports itself.
        let debian = Version::find("20.10.24+dfsg1").unwrap();
        assert!(debian >= MIN_DOCKER && Version::new(19, 3, 15) < MIN_DOCKER);
    }
}
