#!/usr/bin/env bash
# Boot benchmark: the K3s node (recipes/k3s-agent.toml, a stand-in K3s
# binary, an operator with a key) built once as a disk and a PXE bundle,
# then booted in QEMU with UEFI firmware from each, in one run: seconds
# from power-on to the first SSH login, for
#   - the disk (UKI, verity root, /var made at first boot), and
#   - the network (iPXE fetches the bundle from a loopback web server; the
#     initramfs fetches and checks the signed manifest and the root).
# QEMU emulates in software (TCG) as the test suite does; QEMU_ACCEL=kvm
# uses KVM where it works (nested virtual machines often cannot). The
# accelerator is printed.
# Needs root (the build).
#
# Usage: benches/boot.sh          the benchmark (a build, two boots: minutes)
#        benches/boot.sh smoke    the cheap check `just bench-smoke` runs: the
#   tools are there and the benchmark's recipe locks against the mirror.
set -euo pipefail
mode=${1:-full}
case $mode in full | smoke) ;; *) echo "usage: $0 [smoke]" >&2; exit 2 ;; esac
if [ "$mode" = full ] && [ "$(id -u)" -ne 0 ]; then
    echo "benches/boot.sh: skipped, needs root (kiln's install stage)"
    exit 0
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
kiln=${KILN:-$repo/target/release/kiln}
code=/usr/share/OVMF/OVMF_CODE_4M.fd
for need in qemu-system-x86_64 ssh ssh-keygen python3 "$code" /usr/lib/ipxe/qemu/efi-virtio.rom; do
    [ -e "$need" ] || command -v "$need" >/dev/null ||
        { echo "benches/boot.sh: $need is missing (just deps)" >&2; exit 1; }
done
work=$(mktemp -d)
qemu_pid=""
http_pid=""
cleanup() {
    [ -z "$qemu_pid" ] || kill "$qemu_pid" 2>/dev/null || true
    [ -z "$http_pid" ] || kill "$http_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

printf '#!/bin/sh\nexec systemd-notify --ready\n' > k3s
ssh-keygen -q -t ed25519 -N '' -C ops@bench -f ops
cat > node.toml <<TOML
extends = "$repo/recipes/k3s-agent.toml"
[image]
name = "bench"
version = "1"
source_date_epoch = 1700000000
[[artifact]]
name = "k3s"
path = "k3s"
sha256 = "$(sha256sum k3s | cut -d' ' -f1)"
dest = "/usr/local/bin/k3s"
mode = "0755"
[[user]]
name = "ops"
groups = ["ssh-users"]
authorized_keys = ["$(cat ops.pub)"]
[ssh]
from = ["10.0.2.0/24"]
[k3s]
server = "https://10.99.0.1:6443"
servers = ["10.99.0.1/32"]
node_cidrs = ["10.99.0.0/24"]
TOML

if [ "$mode" = smoke ]; then
    "$kiln" -q lock node.toml --cache-dir cache >/dev/null
    echo "kiln lock: the node resolves to $(grep -c '^\[\[package\]\]' node.lock) packages"
    echo "benches/boot.sh smoke: ok"
    exit 0
fi

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
accel=${QEMU_ACCEL:-tcg}

"$kiln" -q keygen --no-password -o release >/dev/null
# warm the package cache (not timed)
"$kiln" -q lock node.toml --cache-dir cache >/dev/null
"$kiln" -q fetch node.toml --locked --cache-dir cache >/dev/null
t0=$(now)
"$kiln" build node.toml --locked --cache-dir cache -o dist \
    --format raw --format pxe --key release.key >/dev/null 2>build.log ||
    { cat build.log >&2; exit 1; }
built=$(secs "$t0" "$(now)")

# boot NAME QEMU-ARGS...: seconds from QEMU's start to an SSH login as ops
boot() {
    local name=$1 ssh_port t0 deadline
    shift
    ssh_port=$(free_port)
    cp /usr/share/OVMF/OVMF_VARS_4M.fd "vars.$name"
    t0=$(now)
    qemu-system-x86_64 -machine q35 -accel "$accel" -m 2048 -smp 2 -nographic -no-reboot \
        -drive "if=pflash,format=raw,unit=0,readonly=on,file=$code" \
        -drive "if=pflash,format=raw,unit=1,file=vars.$name" \
        "$@" -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$ssh_port-:22${bootfile:-}" \
        -device "virtio-net-pci,netdev=n0${nic:-}" \
        -serial "file:serial.$name" -monitor none >"qemu.$name" 2>&1 &
    qemu_pid=$!
    deadline=$(($(date +%s) + 600))
    until ssh -q -i ops -p "$ssh_port" -o BatchMode=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 ops@127.0.0.1 true 2>/dev/null; do
        if [ "$(date +%s)" -gt "$deadline" ] || ! kill -0 "$qemu_pid" 2>/dev/null; then
            echo "benches/boot.sh: $name: no SSH login; the console's end:" >&2
            tail -20 "serial.$name" >&2
            kill "$qemu_pid" 2>/dev/null || true
            exit 1
        fi
        sleep 1
    done
    secs "$t0" "$(now)"
    kill "$qemu_pid"
    wait "$qemu_pid" 2>/dev/null || true
    qemu_pid=""
}

cp dist/bench-1.raw disk.raw
truncate -s 2G disk.raw
disk=$(boot disk -drive if=none,id=d0,format=raw,file=disk.raw -device virtio-blk-pci,drive=d0,bootindex=0)

http_port=$(free_port)
python3 -m http.server "$http_port" --bind 127.0.0.1 --directory dist/bench-1.pxe >http.log 2>&1 &
http_pid=$!
sleep 1
pxe=$(bootfile=",bootfile=http://10.0.2.2:$http_port/boot.ipxe" nic=",bootindex=0" boot pxe)

printf '%d cores, QEMU accelerator %s; load average %s\n' "$(nproc)" "$accel" "$(cut -d' ' -f1 /proc/loadavg)"
printf '%-52s %7.2f s\n' "kiln build --format raw --format pxe (packages cached)" "$built"
printf '%-52s %7.2f s\n' "power-on to SSH, disk (first boot: makes /var)" "$disk"
printf '%-52s %7.2f s\n' "power-on to SSH, PXE (fetches and checks the root)" "$pxe"
printf '%-52s %7.2f\n' "ratio PXE / disk" "$(echo "$pxe / $disk" | bc -l)"
printf 'PXE bundle: root %s MiB, initramfs %s MiB, kernel %s MiB\n' \
    "$(($(stat -c %s dist/bench-1.pxe/root.squashfs) / 1048576))" \
    "$(($(stat -c %s dist/bench-1.pxe/initrd.img) / 1048576))" \
    "$(($(stat -c %s dist/bench-1.pxe/vmlinuz) / 1048576))"
