#!/bin/sh
# Written by kiln: keeps a provisioned /etc/hostname, else names the node
# node-<first 12 hex digits of its machine-id> and writes that down (on a
# read-only root, /etc/hostname is bound from /var/lib/kiln).
set -eu
name=$(tr -d ' \t\n' </etc/hostname 2>/dev/null || true)
if [ -z "$name" ]; then
    id=$(cat /etc/machine-id)
    name=node-$(printf '%.12s' "$id")
    printf '%s\n' "$name" >/etc/hostname
fi
exec hostname "$name"
