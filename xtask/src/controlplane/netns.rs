//! The harness' network namespace: a veth pair gives the host `10.203.0.1` and the namespace
//! `10.203.0.2`. The API server must reach the adapter through a Service's endpoints, and
//! endpoint validation refuses loopback addresses, so the components need a real address.

use std::process::Command;

/// Name of the network namespace.
pub const NETNS: &str = "kscale-harness";
/// Host end of the veth pair.
const VETH_HOST: &str = "kscale-h0";
/// Namespace end of the veth pair.
const VETH_NS: &str = "kscale-h1";
/// Host address on the veth.
pub const HOST_IP: &str = "10.203.0.1";
/// The namespace's address: where the API server and the adapter listen.
pub const NS_IP: &str = "10.203.0.2";

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        anyhow::anyhow!("cannot run `ip {}` ({e}): install iproute2", args.join(" "))
    })?;
    if !out.status.success() {
        anyhow::bail!(
            "`ip {}` failed with {}: {} (network namespaces need root or CAP_NET_ADMIN + CAP_SYS_ADMIN)",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether the namespace exists.
pub fn exists() -> bool {
    std::path::Path::new("/run/netns").join(NETNS).exists()
}

/// Creates the namespace, the veth pair and both addresses.
pub fn create() -> anyhow::Result<()> {
    ip(&["netns", "add", NETNS])?;
    ip(&[
        "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS,
    ])?;
    ip(&["link", "set", VETH_NS, "netns", NETNS])?;
    ip(&["addr", "add", &format!("{HOST_IP}/24"), "dev", VETH_HOST])?;
    ip(&["link", "set", VETH_HOST, "up"])?;
    ip(&[
        "-n",
        NETNS,
        "addr",
        "add",
        &format!("{NS_IP}/24"),
        "dev",
        VETH_NS,
    ])?;
    ip(&["-n", NETNS, "link", "set", VETH_NS, "up"])?;
    ip(&["-n", NETNS, "link", "set", "lo", "up"])?;
    Ok(())
}

/// Process ids of everything still running inside the namespace.
pub fn pids() -> Vec<u32> {
    if !exists() {
        return Vec::new();
    }
    Command::new("ip")
        .args(["netns", "pids", NETNS])
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the veth pair and the namespace; missing pieces are not an error.
pub fn remove() -> anyhow::Result<()> {
    if std::path::Path::new("/sys/class/net")
        .join(VETH_HOST)
        .exists()
    {
        ip(&["link", "del", VETH_HOST])?;
    }
    if exists() {
        ip(&["netns", "del", NETNS])?;
    }
    Ok(())
}
