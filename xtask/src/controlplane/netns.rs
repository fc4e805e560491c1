//! The harness' network namespace: a veth pair gives the host `<net>.0.1` and the namespace
//! `<net>.0.2`. The API server must reach the adapter through a Service's endpoints, and
//! endpoint validation refuses loopback addresses, so the components need a real address.
//!
//! The names a second harness on the same machine must not share are configurable, so that two
//! checkouts do not tear each other down: `KSCALE_HARNESS_NETNS` (the namespace, and from it the
//! veth names and the default state folder) and `KSCALE_HARNESS_NET` (the first two octets of the
//! /16 every address comes from).

use std::process::Command;

use crate::process;
use std::sync::OnceLock;

/// The namespace name when `KSCALE_HARNESS_NETNS` is unset.
pub const DEFAULT_NETNS: &str = "kscale-harness";
/// The /16 when `KSCALE_HARNESS_NET` is unset.
const DEFAULT_NET: &str = "10.203";

/// Every name and address of one harness' network, derived from the two settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Net {
    /// Name of the network namespace.
    pub netns: String,
    /// Host end of the veth pair.
    veth_host: String,
    /// Namespace end of the veth pair.
    veth_ns: String,
    /// Host address on the veth.
    pub host_ip: String,
    /// The namespace's address: where the API server and the adapter listen.
    pub ns_ip: String,
    /// kwok hands out pod IPs from here; the supervisor puts each Running pod's IP on the
    /// namespace's loopback, and the host routes the range through the veth, so the API server's
    /// pod proxy and the host both reach a pod's server at `<pod IP>:<containerPort>` as in a
    /// real cluster.
    pub pod_cidr: String,
    /// kwok's form of [`Net::pod_cidr`] (it hands out addresses after the one given).
    pub kwok_cidr: String,
    /// The Service range of the API server.
    pub service_cidr: String,
    /// The `kubernetes` Service's address (the first of the range), in the serving certificate.
    pub kubernetes_service_ip: String,
}

impl Net {
    /// The network for a namespace name and a `A.B` prefix; refuses what `ip` would refuse or
    /// what would not be a /16.
    pub fn new(netns: &str, net: &str) -> anyhow::Result<Self> {
        if netns.is_empty()
            || netns.len() > 32
            || !netns
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            anyhow::bail!("KSCALE_HARNESS_NETNS={netns:?}: give 1-32 characters of a-z, 0-9 and -");
        }
        let octets: Vec<&str> = net.split('.').collect();
        if octets.len() != 2 || octets.iter().any(|o| o.parse::<u8>().is_err()) {
            anyhow::bail!(
                "KSCALE_HARNESS_NET={net:?}: give the first two octets of a free /16, e.g. 10.204"
            );
        }
        // Interface names have at most 15 bytes: the default keeps its historic names, others
        // get a short hash of the namespace name.
        let veth = if netns == DEFAULT_NETNS {
            "kscale-h".to_owned()
        } else {
            let hash = netns.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            format!("ksh{:08x}-", hash & 0xffff_ffff)
        };
        Ok(Self {
            netns: netns.to_owned(),
            veth_host: format!("{veth}0"),
            veth_ns: format!("{veth}1"),
            host_ip: format!("{net}.0.1"),
            ns_ip: format!("{net}.0.2"),
            pod_cidr: format!("{net}.64.0/20"),
            kwok_cidr: format!("{net}.64.1/20"),
            service_cidr: format!("{net}.128.0/20"),
            kubernetes_service_ip: format!("{net}.128.1"),
        })
    }

    fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str, default: &str| match std::env::var(name) {
            Ok(v) if !v.is_empty() => Ok(v),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(default.to_owned()),
            Err(std::env::VarError::NotUnicode(_)) => Err(anyhow::anyhow!("{name} is not UTF-8")),
        };
        Self::new(
            &var("KSCALE_HARNESS_NETNS", DEFAULT_NETNS)?,
            &var("KSCALE_HARNESS_NET", DEFAULT_NET)?,
        )
    }
}

static NET: OnceLock<Net> = OnceLock::new();

/// Reads and checks the network settings; every `controlplane` command calls it first, so that a
/// bad setting is an error before anything is touched.
pub fn init() -> anyhow::Result<&'static Net> {
    if let Some(net) = NET.get() {
        return Ok(net);
    }
    let net = Net::from_env()?;
    Ok(NET.get_or_init(|| net))
}

/// This harness' network: as [`init`] read it, or the defaults where nothing called it (unit tests).
pub fn net() -> &'static Net {
    NET.get_or_init(|| {
        Net::new(DEFAULT_NETNS, DEFAULT_NET).unwrap_or_else(|e| unreachable!("defaults: {e}"))
    })
}

/// `ip` with what its errors need: the package, and the privileges namespaces take.
fn ip_options() -> process::Options<'static> {
    process::Options {
        missing: Some("install iproute2"),
        hint: Some("network namespaces need root or CAP_NET_ADMIN + CAP_SYS_ADMIN"),
        ..process::Options::default()
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    process::exec(Command::new("ip").args(args), ip_options()).map(drop)
}

/// Whether the namespace exists.
pub fn exists() -> bool {
    std::path::Path::new("/run/netns")
        .join(&net().netns)
        .exists()
}

/// Creates the namespace, the veth pair and both addresses.
pub fn create() -> anyhow::Result<()> {
    let n = net();
    let (netns, host, inside) = (n.netns.as_str(), n.veth_host.as_str(), n.veth_ns.as_str());
    ip(&["netns", "add", netns])?;
    ip(&["link", "add", host, "type", "veth", "peer", "name", inside])?;
    ip(&["link", "set", inside, "netns", netns])?;
    ip(&["addr", "add", &format!("{}/24", n.host_ip), "dev", host])?;
    ip(&["link", "set", host, "up"])?;
    ip(&[
        "-n",
        netns,
        "addr",
        "add",
        &format!("{}/24", n.ns_ip),
        "dev",
        inside,
    ])?;
    ip(&["-n", netns, "link", "set", inside, "up"])?;
    ip(&["-n", netns, "link", "set", "lo", "up"])?;
    ip(&["route", "add", &n.pod_cidr, "via", &n.ns_ip])?;
    Ok(())
}

/// Puts a pod's IP on the namespace loopback (the caller runs inside the namespace); an address
/// already there (a reused IP) is fine.
pub fn add_pod_ip(pod_ip: &str) -> anyhow::Result<()> {
    match ip(&["addr", "add", &format!("{pod_ip}/32"), "dev", "lo"]) {
        // Already there (a restarted supervisor): older iproute2 says "File exists", newer
        // "Address already assigned"; the error carries ip's stderr.
        Err(e)
            if e.to_string().contains("File exists")
                || e.to_string().contains("Address already assigned") =>
        {
            Ok(())
        }
        result => result,
    }
}

/// Removes a pod's IP from the namespace loopback; a missing address is not an error.
pub fn remove_pod_ip(pod_ip: &str) {
    let _ = ip(&["addr", "del", &format!("{pod_ip}/32"), "dev", "lo"]);
}

/// Process ids of everything still running inside the namespace.
pub fn pids() -> Vec<u32> {
    if !exists() {
        return Vec::new();
    }
    process::output(Command::new("ip").args(["netns", "pids", &net().netns]))
        .map(|out| {
            out.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the veth pair and the namespace; missing pieces are not an error.
pub fn remove() -> anyhow::Result<()> {
    let n = net();
    if std::path::Path::new("/sys/class/net")
        .join(&n.veth_host)
        .exists()
    {
        ip(&["link", "del", &n.veth_host])?;
    }
    if exists() {
        ip(&["netns", "del", &n.netns])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_follow_the_two_settings() {
        let default = Net::new(DEFAULT_NETNS, DEFAULT_NET).unwrap();
        assert_eq!(
            (default.veth_host.as_str(), default.ns_ip.as_str()),
            ("kscale-h0", "10.203.0.2")
        );
        assert_eq!(default.kubernetes_service_ip, "10.203.128.1");
        let other = Net::new("kscale-harness-b", "10.204").unwrap();
        assert_eq!(other.pod_cidr, "10.204.64.0/20");
        assert_eq!(other.kwok_cidr, "10.204.64.1/20");
        assert_eq!(other.service_cidr, "10.204.128.0/20");
        assert!(other.veth_host.len() <= 15 && other.veth_host != default.veth_host);
        assert_ne!(other.veth_host, other.veth_ns);
        assert!(Net::new("Bad Name", DEFAULT_NET).is_err());
        assert!(Net::new(DEFAULT_NETNS, "10.300").is_err());
        assert!(Net::new(DEFAULT_NETNS, "10.1.2").is_err());
    }
}
