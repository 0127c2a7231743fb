#!/usr/bin/env bash
# iperf2 (iperf3 cannot do multicast), and tcpdump for scenarios' `capture:` and `lab
# capture`. Installed from the distribution when missing.
set -euo pipefail
missing=()
# iperf2 up to 2.1.8 prints its version on stderr and exits 1: judge by the text.
version=$(iperf --version 2>&1 || true)
[[ "$version" == "iperf version 2"* ]] || missing+=(iperf)
command -v tcpdump >/dev/null || missing+=(tcpdump)
if ((${#missing[@]} == 0)); then
    echo "present: $version; $(tcpdump --version 2>&1 | head -n 1)"
    exit 0
fi
lab_apt_update
lab_apt_install "${missing[@]}"
# iperf 2 exits 1 after printing its version: under pipefail that would fail the step.
(iperf --version 2>&1 || true) | head -n 1
(tcpdump --version 2>&1 || true) | head -n 1
