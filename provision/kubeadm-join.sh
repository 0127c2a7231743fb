#!/usr/bin/env bash
# A worker joins the control plane's cluster with a token `lab` made there (30 minutes),
# then waits until it is a Ready node with Multus's CNI config (the DaemonSets of flannel
# and Multus start on it by themselves). Joined is decided by the worker's CA being the
# cluster's (LAB_JOIN_CA_HASH), not by a file: a failed join or an old cluster's leaves
# kubelet.conf behind, so a rerun resets and joins again.
set -euo pipefail
: "${LAB_ADDRESS:?}" "${LAB_NODE_NAME:?}" "${LAB_CONTROL_PLANE:?}" "${LAB_NIC:?}"
: "${LAB_JOIN_TOKEN:?}" "${LAB_JOIN_CA_HASH:?}" "${LAB_CONTROL_PLANE_NIC:?}"
: "${LAB_KUBE_DIR:=/etc/kubernetes}" "${LAB_CNI_CONF_DIR:=/etc/cni/net.d}"
: "${LAB_NODE_WAIT_S:=300}" "${LAB_POLL_S:=3}"
kubeconfig=$LAB_KUBE_DIR/kubelet.conf
multus_conf=$LAB_CNI_CONF_DIR/00-multus.conf

# flannel's --iface and the NAD's master are one NIC name for every node.
if [[ "$LAB_NIC" != "$LAB_CONTROL_PLANE_NIC" ]]; then
    lab_fail 1 "the lab NIC of $LAB_NODE_NAME is $LAB_NIC and the control plane's is $LAB_CONTROL_PLANE_NIC: flannel (--iface) and the NetworkAttachmentDefinition (master) name one NIC on every node; give every node the same box"
fi
lab_kubelet_node_ip "$LAB_ADDRESS"

node_ready() {  # as this node's kubelet sees itself (the Node authorizer lets it read it)
    said=$(kubectl --kubeconfig="$kubeconfig" --request-timeout=5s get node "$LAB_NODE_NAME" \
        -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>&1) || true
    [[ "$said" == True ]]
}

# Joined to this very cluster: its CA is the one the control plane has now. A worker of a
# cluster that was made anew (another CA) is reset and joins again; a worker of this one
# is never reset because its API was slow to answer.
joined_here() {
    [[ -f "$kubeconfig" && -f "$LAB_KUBE_DIR/pki/ca.crt" ]] &&
        [[ "$(lab_ca_hash "$LAB_KUBE_DIR/pki/ca.crt" || true)" == "$LAB_JOIN_CA_HASH" ]]
}

if joined_here; then
    echo "$LAB_NODE_NAME joined this cluster already"
else
    if [[ -e "$kubeconfig" || -e "$LAB_KUBE_DIR/pki/ca.crt" ]]; then
        echo "joined to another cluster, or a join that did not finish: kubeadm reset -f" >&2
        kubeadm reset -f
    fi
    if ! out=$(kubeadm join "$LAB_CONTROL_PLANE" --token "$LAB_JOIN_TOKEN" \
        --discovery-token-ca-cert-hash "$LAB_JOIN_CA_HASH" --node-name "$LAB_NODE_NAME" 2>&1); then
        printf '%s\n' "$out" >&2
        unreachable='connection refused|i/o timeout|no route to host|context deadline exceeded'
        if grep -Eiq "$unreachable" <<<"$out"; then
            # The control plane restarting (or a slow VM): retried by the engine.
            lab_fail 75 "the control plane at $LAB_CONTROL_PLANE does not answer: $(grep -Eio "($unreachable).*" <<<"$out" | head -n 1)"
        fi
        lab_fail 1 "kubeadm join $LAB_CONTROL_PLANE failed: $(grep -Ei 'error' <<<"$out" | tail -n 1)"
    fi
    printf '%s\n' "$out"
fi

deadline=$((SECONDS + LAB_NODE_WAIT_S))
said=""
until node_ready && [[ -s "$multus_conf" ]]; do
    if ((SECONDS >= deadline)); then
        systemctl --no-pager status kubelet >&2 || true
        ls -l "$LAB_CNI_CONF_DIR" >&2 || true
        if grep -Eiq 'connection refused|timeout|no route to host|unable to connect' <<<"$said"; then
            lab_fail 75 "the API server does not answer $LAB_NODE_NAME: $(head -n 1 <<<"$said")"
        fi
        lab_fail 1 "$LAB_NODE_NAME joined but is not a Ready node with Multus's $multus_conf within $LAB_NODE_WAIT_S s: run \`kubectl describe node $LAB_NODE_NAME\` on the control plane"
    fi
    sleep "$LAB_POLL_S"
done
echo "$LAB_NODE_NAME is Ready and Multus wrote $multus_conf"
