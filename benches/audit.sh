#!/usr/bin/env bash
# Audit benchmark: `kiln audit` of a directory of 10,000 files (a small
# rootfs-like tree with sshd, sysctl and nftables configs among them).
# Prints the time of each run; a benchmark, not a timed test.
# Usage: benches/audit.sh [FILES]   (default 10000)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
kiln=${KILN:-$repo/target/release/kiln}
files=${1:-10000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root

# 100 directories of files, plus the configuration files the rules read
mkdir -p "$root"/{etc/ssh/sshd_config.d,etc/sysctl.d,usr/sbin,usr/bin}
for d in $(seq 1 100); do
    mkdir -p "$root/usr/share/bench/d$d"
done
python3 - "$root/usr/share/bench" "$files" <<'PY'
import os, sys
base, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(base, f"d{i % 100 + 1}", f"f{i}"), "w") as f:
        f.write("x" * (i % 512))
PY
printf 'Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin no\n' > "$root/etc/ssh/sshd_config"
printf 'PasswordAuthentication no\n' > "$root/etc/ssh/sshd_config.d/10-kiln.conf"
printf 'kernel.kptr_restrict = 2\n' > "$root/etc/sysctl.d/60-kiln.conf"
printf 'table inet kiln {\n chain input { type filter hook input priority 0; policy drop; iif lo accept; }\n}\n' > "$root/etc/nftables.conf"
printf 'root:x:0:0::/root:/bin/bash\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
: > "$root/usr/sbin/sshd"
count=$(find "$root" | wc -l)
echo "input: $count paths under $root; $(nproc) cores"

for run in 1 2 3; do
    /usr/bin/time -f "%e %M" -o "$work/time" "$kiln" audit "$root" --format json -o "$work/report.json" --fail-on none >/dev/null 2>"$work/log" \
        || { echo "benches/audit.sh: kiln audit failed:" >&2; cat "$work/log" >&2; exit 1; }
    read -r secs kib < "$work/time"
    printf 'run %d: kiln audit %7.3f s  %8d KiB peak\n' "$run" "$secs" "$kib"
done
