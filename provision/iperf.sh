#!/usr/bin/env bash
# iperf2 (iperf3 cannot do multicast). Installed from the distribution when missing.
set -euo pipefail
# iperf2 up to 2.1.8 prints its version on stderr and exits 1: judge by the text.
version=$(iperf --version 2>&1 || true)
if [[ "$version" == "iperf version 2"* ]]; then
    echo "present: $version"
    exit 0
fi
lab_apt_update
lab_apt_install iperf
iperf --version 2>&1 | head -n 1
