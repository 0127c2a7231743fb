#!/usr/bin/env bash
# containerd from the distribution (1.7 on Ubuntu 24.04), CRI plugin enabled, systemd
# cgroup driver (kubeadm's default for the kubelet).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! command -v containerd >/dev/null; then
    if fuser /var/lib/dpkg/lock-frontend >/dev/null 2>&1; then exit 75; fi
    apt-get update -qq || exit 75
    apt-get install -y -qq containerd
fi
mkdir -p /etc/containerd
containerd config default > /etc/containerd/config.toml.new
# Distributions ship a config that disables the CRI plugin; the default one enables it.
sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml.new
if ! cmp -s /etc/containerd/config.toml.new /etc/containerd/config.toml; then
    mv /etc/containerd/config.toml.new /etc/containerd/config.toml
    systemctl restart containerd
else
    rm /etc/containerd/config.toml.new
fi
systemctl enable --now containerd >/dev/null
grep -q 'SystemdCgroup = true' /etc/containerd/config.toml
containerd --version
