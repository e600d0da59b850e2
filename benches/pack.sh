#!/usr/bin/env bash
# Packing benchmark: kiln's whole build (verify + load + pack + manifest) of
# a rootfs-sized tree, against the reproducible `tar | zstd` pipeline a user
# would otherwise write. Prints times, the ratio kiln/tar and peak memory.
# Usage: benches/pack.sh [SOURCE_DIR]   (default: /usr/share, a real mix of
# many small files; pass /usr/lib for a multi-GiB run)
set -euo pipefail
kiln=${KILN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/kiln}
src=${1:-/usr/share}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$src" -cf "$work/base.tar" . 2>/dev/null || true
size=$(stat -c %s "$work/base.tar")
files=$(tar -tf "$work/base.tar" | wc -l)
cat > "$work/bench.toml" <<TOML
[image]
name = "bench"
version = "1"
[base]
path = "base.tar"
sha256 = "$(sha256sum "$work/base.tar" | cut -d' ' -f1)"
# a benchmark of packing, not of hardening: the audit reports, never gates
[audit]
fail_on = "none"
TOML
mkdir "$work/x" && tar -C "$work/x" -xf "$work/base.tar"

measure() { # label, command...: prints seconds and peak KiB
    local label=$1; shift
    if ! /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/log"; then
        echo "benches/pack.sh: $label failed:" >&2; cat "$work/log" >&2; exit 1
    fi
    read -r secs kib < "$work/time"
    printf '%-34s %7.2f s  %8d KiB peak\n' "$label" "$secs" "$kib"
    echo "$secs" > "$work/$label.secs"
}

echo "input: $src, $files entries, $((size / 1048576)) MiB as tar; $(nproc) cores"
for run in 1 2; do
    rm -rf "$work/out"
    measure "kiln build (zstd)" "$kiln" build "$work/bench.toml" -o "$work/out"
    cp "$work/log" "$work/kiln.log"
    measure "tar | zstd -12 -T0" sh -c "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C '$work/x' -cf - . | zstd -q -12 -T0 > '$work/ref.tar.zst'"
    ratio=$(echo "$(cat "$work/kiln build (zstd).secs") / $(cat "$work/tar | zstd -12 -T0.secs")" | bc -l)
    printf 'run %d: kiln / (tar | zstd) = %.2f\n' "$run" "$ratio"
done
ls -l "$work/out"/*.tar.zst "$work/ref.tar.zst" | awk '{print $5, $9}'
# kiln does more than the pipeline: it verifies the pinned base tarball and
# loads it (every member hashed), audits and writes a manifest; its packing
# alone is the comparable part.
echo "where kiln's time goes (last run):"
grep -E ' in [0-9.]+s' "$work/kiln.log" | sed 's/^/  /'
