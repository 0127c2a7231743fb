#!/usr/bin/env bash
# Kernel settings for the lab: forwarding (the pod network needs it on the node) and room
# for more multicast memberships than the default 20 per socket.
set -euo pipefail
: "${LAB_SYSCTL_DIR:=/etc/sysctl.d}"
conf="$LAB_SYSCTL_DIR/90-mcast-lab.conf"
mkdir -p "$LAB_SYSCTL_DIR"
cat > "$conf" <<'CONF'
net.ipv4.ip_forward = 1
net.ipv4.igmp_max_memberships = 256
CONF
sysctl -q -p "$conf"
echo "applied $conf"
