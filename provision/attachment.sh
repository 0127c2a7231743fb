#!/usr/bin/env bash
# The NetworkAttachmentDefinition rendered by lab from lab.yaml, with the lab NIC found
# on this node as the macvlan master.
set -euo pipefail
: "${LAB_NAD_TEMPLATE:?}" "${LAB_STATE_DIR:?}"
export KUBECONFIG=/etc/kubernetes/admin.conf
nic=$(cat "$LAB_STATE_DIR/lab-nic")
printf '%s\n' "$LAB_NAD_TEMPLATE" | sed "s/@LAB_NIC@/${nic}/" | kubectl apply -f -
