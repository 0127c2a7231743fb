#!/usr/bin/env bash
# flannel at a pinned release, bound to the lab NIC (--iface), then wait for the node.
set -euo pipefail
: "${LAB_FLANNEL:?}" "${LAB_NIC:?}" "${LAB_NODE_NAME:?}"
export KUBECONFIG=/etc/kubernetes/admin.conf
lab_fetch "https://github.com/flannel-io/flannel/releases/download/${LAB_FLANNEL}/kube-flannel.yml" /tmp/kube-flannel.yml
sed -i "s|- --kube-subnet-mgr|- --kube-subnet-mgr\n        - --iface=${LAB_NIC}|" /tmp/kube-flannel.yml
grep -q -- "--iface=${LAB_NIC}" /tmp/kube-flannel.yml ||
    lab_fail 1 "the flannel manifest of $LAB_FLANNEL has no --kube-subnet-mgr argument to follow"
kubectl apply -f /tmp/kube-flannel.yml
if ! kubectl wait --for=condition=Ready "node/$LAB_NODE_NAME" --timeout=300s; then
    kubectl describe node "$LAB_NODE_NAME" >&2
    kubectl -n kube-flannel get pods -o wide >&2
    kubectl get events -A --sort-by=.lastTimestamp | tail -n 30 >&2
    lab_fail 1 "node $LAB_NODE_NAME not Ready within 300 s after flannel"
fi
