#!/usr/bin/env bash
# Starts libvirt by hand on a machine without systemd (CI), idempotently.
# /dev/kvm must be group kvm, mode 660 before libvirtd starts, or libvirt re-probes QEMU
# on every call and `vagrant up` stalls for minutes (the VMs then run under plain QEMU).
set -euo pipefail
if [[ -e /dev/kvm ]]; then
    chgrp kvm /dev/kvm 2>/dev/null || true
    chmod 660 /dev/kvm
fi
mkdir -p /run/libvirt /var/log/libvirt
pgrep -x virtlogd >/dev/null || virtlogd -d
pgrep -x libvirtd >/dev/null || libvirtd -d
for _ in $(seq 1 60); do
    virsh -c qemu:///system version >/dev/null 2>&1 && exit 0
    sleep 0.5
done
echo "libvirtd did not answer on qemu:///system within 30 s" >&2
exit 1
