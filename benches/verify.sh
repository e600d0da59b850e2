#!/usr/bin/env bash
# Verify benchmark: `kiln verify` of a signed image with a 1 GiB artifact
# (signature + streamed sha256 of the artifact), against `openssl dgst
# -sha256` on the same file, page cache warm for both. Target ratio >= 0.9.
# Usage: benches/verify.sh [SIZE_MIB]   (default 1024)
set -euo pipefail
kiln=${KILN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/kiln}
mib=${1:-1024}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

mkdir -p src/data && head -c "${mib}M" /dev/urandom > src/data/blob && tar -C src -cf base.tar . && rm -rf src
cat > r.toml <<TOML
[image]
name = "bench"
version = "1"
[base]
path = "base.tar"
sha256 = "$(sha256sum base.tar | cut -d' ' -f1)"
# a benchmark of verification, not of hardening: the audit never gates
[audit]
fail_on = "none"
TOML
"$kiln" -q keygen -o key --no-password >/dev/null
"$kiln" build r.toml -o dist --compression gzip --key key.key >/dev/null 2>build.log \
    || { echo "benches/verify.sh: the build failed:" >&2; cat build.log >&2; exit 1; }
artifact=dist/bench-1.rootfs.tar.gz
size=$(stat -c %s "$artifact")
cat "$artifact" > /dev/null   # warm the page cache

best() { # command...: the best of 3 wall-clock times, in seconds
    local best=999999
    for _ in 1 2 3; do
        local start end
        start=$(date +%s.%N); "$@" > /dev/null; end=$(date +%s.%N)
        best=$(echo "t = $end - $start; if (t < $best) t else $best" | bc -l)
    done
    echo "$best"
}
k=$(best "$kiln" -q verify --key key.pub dist/bench-1.manifest.json)
o=$(best openssl dgst -sha256 "$artifact")
mibs() { echo "$size / 1048576 / $1" | bc -l; }
printf 'artifact: %d MiB; %s cores\n' "$((size / 1048576))" "$(nproc)"
printf '%-28s %6.2f s  %7.0f MiB/s\n' "kiln verify" "$k" "$(mibs "$k")"
printf '%-28s %6.2f s  %7.0f MiB/s\n' "openssl dgst -sha256" "$o" "$(mibs "$o")"
printf 'throughput kiln / openssl = %.2f (target >= 0.9)\n' "$(echo "$o / $k" | bc -l)"
