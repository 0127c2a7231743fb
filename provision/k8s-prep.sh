#!/usr/bin/env bash
# Node prerequisites for kubeadm that need no download: swap off (for good), the overlay
# and br_netfilter modules (now and at boot), and the forwarding/bridge sysctls.
set -euo pipefail
: "${LAB_SYSCTL_DIR:=/etc/sysctl.d}" "${LAB_MODULES_DIR:=/etc/modules-load.d}"

swapoff -a
if grep -Eq '^[^#].*\sswap\s' /etc/fstab; then
    sed -i -E 's/^([^#].*\sswap\s.*)$/# disabled by mcast-lab (kubelet): \1/' /etc/fstab
fi

mkdir -p "$LAB_MODULES_DIR"
printf 'overlay\nbr_netfilter\n' > "$LAB_MODULES_DIR/mcast-lab-k8s.conf"
modprobe overlay
modprobe br_netfilter

mkdir -p "$LAB_SYSCTL_DIR"
cat > "$LAB_SYSCTL_DIR/91-mcast-lab-k8s.conf" <<'CONF'
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward = 1
CONF
sysctl -q -p "$LAB_SYSCTL_DIR/91-mcast-lab-k8s.conf"
echo "swap off; overlay, br_netfilter loaded; bridge-nf-call-iptables=$(sysctl -n net.bridge.bridge-nf-call-iptables)"
