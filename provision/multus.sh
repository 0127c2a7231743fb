#!/usr/bin/env bash
# Multus thick plugin at a pinned release, its image set to that release (the tag's
# manifest says snapshot-thick) and its memory limit raised (50Mi is OOM-killed when many
# pods start at once: multus-cni issues 1346, 1416). Ready means the daemon wrote its CNI
# config: the daemonset has no readiness probe, and a pod made before the file exists
# gets no attachment.
set -euo pipefail
: "${LAB_MULTUS:?}" "${LAB_MULTUS_MEMORY:=300Mi}" "${LAB_MULTUS_WAIT_S:=300}"
export KUBECONFIG=/etc/kubernetes/admin.conf
conf=/etc/cni/net.d/00-multus.conf
manifest=/tmp/multus-daemonset-thick.yml
lab_fetch "https://raw.githubusercontent.com/k8snetworkplumbingwg/multus-cni/${LAB_MULTUS}/deployments/multus-daemonset-thick.yml" "$manifest"
sed -i -E "s|(image: ghcr.io/k8snetworkplumbingwg/multus-cni):[^ ]+|\1:${LAB_MULTUS}-thick|" "$manifest"
sed -i -E "s|memory: \"50Mi\"|memory: \"${LAB_MULTUS_MEMORY}\"|" "$manifest"
grep -q "memory: \"${LAB_MULTUS_MEMORY}\"" "$manifest" ||
    lab_fail 1 "the Multus manifest of $LAB_MULTUS has no 50Mi memory limit to raise"
kubectl apply -f "$manifest"
deadline=$((SECONDS + LAB_MULTUS_WAIT_S))
until kubectl -n kube-system rollout status daemonset/kube-multus-ds --timeout=10s >/dev/null 2>&1 &&
    [[ -s "$conf" ]]; do
    if ((SECONDS >= deadline)); then
        kubectl -n kube-system describe daemonset/kube-multus-ds >&2
        kubectl -n kube-system logs daemonset/kube-multus-ds --tail=50 >&2 || true
        kubectl -n kube-system get events --sort-by=.lastTimestamp | tail -n 30 >&2
        lab_fail 1 "Multus did not become ready (daemonset rolled out and $conf written) within $LAB_MULTUS_WAIT_S s"
    fi
    sleep 3
done
echo "Multus ready: $conf"
