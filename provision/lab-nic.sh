#!/usr/bin/env bash
# Find the NIC that holds this host's lab address (names differ between boxes: eth1,
# enp0s8, ens6...) and record it for later steps. Fails if the address is missing or has
# the wrong prefix (a /32 lab NIC receives no multicast from the subnet).
set -euo pipefail
: "${LAB_ADDRESS:?}" "${LAB_PREFIXLEN:?}" "${LAB_STATE_DIR:?}"

line=$(ip -o -4 addr show | awk -v a="$LAB_ADDRESS" '{split($4, p, "/"); if (p[1] == a) print $2, p[2]}')
if [[ -z "$line" ]]; then
    echo "no interface holds the lab address $LAB_ADDRESS; interfaces:" >&2
    ip -o -4 addr show >&2
    exit 1
fi
read -r nic prefix <<<"$line"
if [[ "$prefix" != "$LAB_PREFIXLEN" ]]; then
    echo "$nic holds $LAB_ADDRESS/$prefix, expected /$LAB_PREFIXLEN (the box's network setup lost the netmask)" >&2
    exit 1
fi
ip link set dev "$nic" up
mkdir -p "$LAB_STATE_DIR"
printf '%s\n' "$nic" > "$LAB_STATE_DIR/lab-nic"
# For the steps after this one (flannel's --iface), and their digests: a new NIC reruns them.
{ grep -v '^LAB_NIC=' "$LAB_STATE_DIR/env" 2>/dev/null || true; echo "LAB_NIC=$nic"; } \
    > "$LAB_STATE_DIR/env.new"
mv "$LAB_STATE_DIR/env.new" "$LAB_STATE_DIR/env"
echo "lab NIC: $nic ($LAB_ADDRESS/$prefix)"
