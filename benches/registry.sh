#!/usr/bin/env bash
# Shared-cache benchmark, NODE set, real mirror of the build host:
#   a fully cold build (empty local cache: download and install afresh)  vs
#   a local warm build (the same cache directory again)  vs
#   a cold builder with a warm registry cache (empty local cache,
#   --cache-from a docker-registry on loopback that another builder filled
#   with --cache-to): what a fresh CI runner of a build matrix does.
# Prints seconds and the ratios; the goal is the registry build near the
# local warm one, far below the cold one. The three images must be the
# same bytes. Needs root (the install stage runs chroots).
#
# Usage: benches/registry.sh          the benchmark (best of two runs)
#        benches/registry.sh smoke    every step once (`just bench-smoke`)
set -euo pipefail
mode=${1:-full}
case $mode in full | smoke) ;; *) echo "usage: $0 [smoke]" >&2; exit 2 ;; esac
if [ "$(id -u)" -ne 0 ]; then
    echo "benches/registry.sh: skipped, needs root (kiln's install stage runs chroots)"
    exit 0
fi
repo_dir=$(cd "$(dirname "$0")/.." && pwd)
kiln=${KILN:-$repo_dir/target/release/kiln}
command -v docker-registry >/dev/null || { echo "benches/registry.sh: needs docker-registry (just deps-test)" >&2; exit 1; }
runs=2
[ "$mode" = full ] || runs=1
work=$(mktemp -d)
registry_pid=""
cleanup() { [ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
packages=(systemd systemd-sysv openssh-server nftables iproute2 ca-certificates kmod udev)
quoted=$(printf '"%s", ' "${packages[@]}")
cat > node.toml <<TOML
[image]
name = "node"
version = "1"
source_date_epoch = 1700000000
[debian]
suite = "bookworm"
variant = "minbase"
packages = [${quoted%, }]
[audit]
fail_on = "none"
TOML
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }
ratio() { echo "$1 / $2" | bc -l; }
fail() { echo "benches/registry.sh: $1 failed:" >&2; cat "$2" >&2; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > registry.yml <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
  secret: kiln-bench
YML
docker-registry serve registry.yml > registry.log 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$port/v2/" >/dev/null || fail "starting docker-registry" registry.log
cache="127.0.0.1:$port/kiln/cache"

"$kiln" -q lock node.toml --cache-dir lock-cache >/dev/null

# build NAME CACHE_DIR [ARGS...]: seconds of one build into out.NAME
build() {
    local name=$1 dir=$2 t0 t1
    shift 2
    rm -rf "out.$name"
    t0=$(now)
    "$kiln" build node.toml --locked --compression none --cache-dir "$dir" -o "out.$name" --plain-http "$@" \
        > "log.$name" 2>&1 || fail "kiln build ($name)" "log.$name"
    t1=$(now)
    secs "$t0" "$t1"
}
best() { printf '%s\n' "$@" | sort -g | head -n 1; }

cold=(); warm=(); shared=()
for run in $(seq "$runs"); do
    rm -rf "cold.$run"
    cold+=("$(build cold "cold.$run")")
    warm+=("$(build warm "cold.$run")")
done
# Another builder fills the registry cache (not timed).
build filler "cold.1" --cache-to "$cache" >/dev/null
for run in $(seq "$runs"); do
    rm -rf "fresh.$run"
    shared+=("$(build shared "fresh.$run" --cache-from "$cache")")
done
grep -q "from the registry cache" log.shared || fail "taking packages from the registry cache" log.shared
grep -q "from the install cache" log.shared || fail "taking the installed tree from the registry cache" log.shared
for name in warm shared; do
    cmp -s out.cold/node-1.rootfs.tar "out.$name/node-1.rootfs.tar" || {
        echo "benches/registry.sh: the $name build differs from the cold one" >&2
        exit 1
    }
done

c=$(best "${cold[@]}"); w=$(best "${warm[@]}"); s=$(best "${shared[@]}")
size=$(du -sh registry | cut -f1)
printf '\nshared cache, %d packages (registry holds %s), best of %d:\n' \
    "$(grep -c '^\[\[package\]\]' node.lock)" "$size" "$runs"
printf '  fully cold build                  %7.2f s\n' "$c"
printf '  local warm cache                  %7.2f s\n' "$w"
printf '  cold builder, warm registry cache %7.2f s\n' "$s"
printf '  registry / local warm   %5.2fx   (goal: near 1)\n' "$(ratio "$s" "$w")"
printf '  registry / fully cold   %5.2fx   (below 1 is faster)\n' "$(ratio "$s" "$c")"
printf '  the three images are the same bytes\n'
