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
/// kwok hands out pod IPs from here; the supervisor puts each Running pod's IP on the namespace's
/// loopback, and the host routes the range through the veth, so the API server's pod proxy and
/// the host both reach a pod's server at `<pod IP>:<containerPort>` as in a real cluster.
pub const POD_CIDR: &str = "10.203.64.0/20";

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
    ip(&["route", "add", POD_CIDR, "via", NS_IP])?;
    Ok(())
}

/// Puts a pod's IP on the namespace loopback (the caller runs inside the namespace); an address
/// already there (a reused IP) is fine.
pub fn add_pod_ip(pod_ip: &str) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(["addr", "add", &format!("{pod_ip}/32"), "dev", "lo"])
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run `ip addr add` ({e}): install iproute2"))?;
    if out.status.success() || String::from_utf8_lossy(&out.stderr).contains("File exists") {
        return Ok(());
    }
    anyhow::bail!(
        "`ip addr add {pod_ip}/32 dev lo` failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// Removes a pod's IP from the namespace loopback; a missing address is not an error.
pub fn remove_pod_ip(pod_ip: &str) {
    let _ = Command::new("ip")
        .args(["addr", "del", &format!("{pod_ip}/32"), "dev", "lo"])
        .output();
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
