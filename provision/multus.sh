#!/usr/bin/env bash
# Multus thick plugin at a pinned release, its image set to that release (the tag's
# manifest says snapshot-thick), then wait for the daemonset.
set -euo pipefail
: "${LAB_MULTUS:?}"
export KUBECONFIG=/etc/kubernetes/admin.conf
url="https://raw.githubusercontent.com/k8snetworkplumbingwg/multus-cni/${LAB_MULTUS}/deployments/multus-daemonset-thick.yml"
curl -fsSL "$url" -o /tmp/multus-daemonset-thick.yml || exit 75
sed -i -E "s|(image: ghcr.io/k8snetworkplumbingwg/multus-cni):[^ ]+|\1:${LAB_MULTUS}-thick|" \
    /tmp/multus-daemonset-thick.yml
kubectl apply -f /tmp/multus-daemonset-thick.yml
if ! kubectl -n kube-system rollout status daemonset/kube-multus-ds --timeout=300s; then
    kubectl -n kube-system describe daemonset/kube-multus-ds >&2
    kubectl -n kube-system get events --sort-by=.lastTimestamp | tail -n 30 >&2
    exit 1
fi
