#!/usr/bin/env bash
# iperf2 (iperf3 cannot do multicast). Installed from the distribution when missing.
set -euo pipefail
# iperf2 prints its version on stderr and exits 1 even when present: judge by the text.
version=$(iperf --version 2>&1 || true)
if [[ "$version" == "iperf version 2"* ]]; then
    echo "present: $version"
    exit 0
fi
if fuser /var/lib/dpkg/lock-frontend >/dev/null 2>&1; then
    echo "dpkg is locked by another process (unattended-upgrades?); will retry" >&2
    exit 75
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || exit 75
apt-get install -y -qq iperf
iperf --version 2>&1 | head -n 1
