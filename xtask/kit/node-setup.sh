#!/bin/sh
# Runs inside a chroot of the kit's Debian rootfs to make it a minikube node base image: the same
# adjustments minikube's own kicbase makes (systemd as PID 1 in a container, the `docker` user
# minikube logs in as over ssh, passwordless sudo), with the fixes this rootfs needs.
set -eu

# systemd in a container: no udev, no getty, no local mounts; only what minikube starts itself.
find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete
rm -f /lib/systemd/system/multi-user.target.wants/* \
      /etc/systemd/system/*.wants/* \
      /lib/systemd/system/local-fs.target.wants/* \
      /lib/systemd/system/sockets.target.wants/*udev* \
      /lib/systemd/system/sockets.target.wants/*initctl* \
      /lib/systemd/system/basic.target.wants/*
echo "ReadKMsg=no" >> /etc/systemd/journald.conf
sed -i 's#OnBootSec=.*#OnBootSec=1min#' /usr/lib/systemd/system/systemd-tmpfiles-clean.timer
# minikube starts the runtime it was asked for; sshd and the automount unit start at boot.
systemctl enable ssh.service minikube-automount.service
systemctl disable containerd.service 2>/dev/null || true

mkdir -p /etc/kubernetes/manifests /var/run/sshd /kind /opt/cni/bin
sed -ri 's#^(hosts:\s*).*#\1files dns#' /etc/nsswitch.conf

# sshd without PAM; minikube runs tools such as losetup over ssh, which live in sbin.
sed -ri 's/^#?UsePAM .*/UsePAM no/' /etc/ssh/sshd_config
echo "SetEnv PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" >> /etc/ssh/sshd_config

# The user minikube logs in as. Its password field must be `*` (no password, not locked):
# with `!` sshd refuses the key login ("User docker not allowed because account is locked").
groupadd --force docker
id docker >/dev/null 2>&1 || useradd --create-home --gid docker --groups sudo --shell /bin/bash docker
usermod --password '*' docker
echo '%sudo ALL=(ALL) NOPASSWD:ALL' >> /etc/sudoers
mkdir -p /home/docker/.ssh
chown docker:docker /home/docker/.ssh
chmod 700 /home/docker/.ssh

# A Service's cluster IP means nothing outside the cluster. Until kube-proxy has programmed a new
# Service, packets to its IP follow the default route out of the node; where the machine's network
# answers them (a transparent proxy accepts any port 443), the API server's aggregator keeps that
# connection and reports an APIService unavailable for good (metrics-server answering 404). A
# refusal instead makes it retry until kube-proxy's rule is there. minikube's service range is
# kubeadm's default, 10.96.0.0/12; traffic kube-proxy rewrote no longer has such a destination.
cat > /usr/local/sbin/kit-service-range-guard <<'GUARD'
#!/bin/sh
set -eu
for chain in OUTPUT FORWARD; do
  iptables -C "$chain" -d 10.96.0.0/12 -p tcp -j REJECT --reject-with tcp-reset 2>/dev/null ||
    iptables -I "$chain" -d 10.96.0.0/12 -p tcp -j REJECT --reject-with tcp-reset
done
GUARD
chmod 755 /usr/local/sbin/kit-service-range-guard
cat > /etc/systemd/system/kit-service-range-guard.service <<'UNIT'
[Unit]
Description=Refuse packets to Service IPs that kube-proxy has not rewritten
Before=kubelet.service containerd.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/kit-service-range-guard

[Install]
WantedBy=multi-user.target
UNIT
systemctl enable kit-service-range-guard.service

# Debian installs the CNI plugins under /usr/lib/cni; kubelet and containerd look in /opt/cni/bin.
cp -a /usr/lib/cni/. /opt/cni/bin/

# runc behind the kit's wrapper (a no-op where CAP_SYS_RESOURCE exists); the wrapper is
# written to /usr/sbin/runc afterwards.
mv /usr/sbin/runc /usr/sbin/runc.real

apt-get clean
rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/locale/*
