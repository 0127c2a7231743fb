#!/usr/bin/env bash
# flannel at a pinned release, bound to the lab NIC (--iface), then wait for the node.
set -euo pipefail
: "${LAB_FLANNEL:?}" "${LAB_STATE_DIR:?}" "${LAB_NODE_NAME:?}"
export KUBECONFIG=/etc/kubernetes/admin.conf
nic=$(cat "$LAB_STATE_DIR/lab-nic")
url="https://github.com/flannel-io/flannel/releases/download/${LAB_FLANNEL}/kube-flannel.yml"
curl -fsSL "$url" -o /tmp/kube-flannel.yml || exit 75
sed -i "s|- --kube-subnet-mgr|- --kube-subnet-mgr\n        - --iface=${nic}|" /tmp/kube-flannel.yml
kubectl apply -f /tmp/kube-flannel.yml
if ! kubectl wait --for=condition=Ready "node/$LAB_NODE_NAME" --timeout=300s; then
    kubectl describe node "$LAB_NODE_NAME" >&2
    kubectl -n kube-flannel get pods -o wide >&2
    kubectl get events -A --sort-by=.lastTimestamp | tail -n 30 >&2
    exit 1
fi
