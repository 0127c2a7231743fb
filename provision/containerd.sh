#!/usr/bin/env bash
# containerd from the distribution (Ubuntu 24.04: 2.2.x from noble-updates), the CRI
# plugin enabled (a distribution's own config may disable it; the default one does not),
# the systemd cgroup driver and the pinned sandbox (pause) image (lib.sh).
set -euo pipefail
: "${LAB_PAUSE_IMAGE:?}"
if ! command -v containerd >/dev/null; then
    lab_apt_update
    lab_apt_install containerd
fi
major=$(containerd --version | grep -Eo ' v?[0-9]+\.' | head -n 1 | tr -dc '0-9')
mkdir -p /etc/containerd
containerd config default | lab_containerd_config "$major" "$LAB_PAUSE_IMAGE" \
    > /etc/containerd/config.toml.new
if ! cmp -s /etc/containerd/config.toml.new /etc/containerd/config.toml; then
    mv /etc/containerd/config.toml.new /etc/containerd/config.toml
    systemctl restart containerd
else
    rm /etc/containerd/config.toml.new
fi
systemctl enable --now containerd >/dev/null
containerd --version
lab_bundle_images  # with a bundle: its images, before anything would pull them
