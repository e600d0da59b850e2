#!/usr/bin/env bash
# Debian archive benchmark, real mirror of the build host, NODE set:
#   lock:  kiln lock (fetch + verify signed indexes, resolve)  vs  apt-get update
#          into a throwaway apt root (fetch + verify the same indexes);
#   fetch: kiln fetch, cold (empty cache) and warm  vs  apt-get download of
#          the same package versions (cold).
# Prints seconds, MiB/s and ratios (kiln / apt; below 1 is faster).
set -euo pipefail
kiln=${KILN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/kiln}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
cat > node.toml <<'TOML'
[image]
name = "node"
version = "1"
[debian]
suite = "bookworm"
variant = "minbase"
packages = ["systemd", "systemd-sysv", "openssh-server", "nftables", "iproute2", "ca-certificates", "kmod", "udev"]
TOML
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }

# lock vs apt-get update in a private apt root using the host's sources
mkdir -p apt/etc/apt/preferences.d apt/etc/apt/apt.conf.d apt/lists/partial apt/cache apt/state && touch apt/state/status
cp -r /etc/apt/sources.list* /etc/apt/trusted.gpg* apt/etc/apt/ 2>/dev/null || true
aptopts=(-o Dir::Etc="$work/apt/etc/apt" -o Dir::State::Lists="$work/apt/lists" -o Dir::Cache="$work/apt/cache"
         -o Dir::State::status="$work/apt/state/status" -o Debug::NoLocking=1 -o APT::Get::List-Cleanup=0)
t0=$(now); "$kiln" -q lock node.toml --cache-dir cache >/dev/null; t1=$(now)
apt-get -qq "${aptopts[@]}" update >/dev/null 2>&1; t2=$(now)
lock=$(secs "$t0" "$t1"); update=$(secs "$t1" "$t2")

# fetch: kiln cold, kiln warm, apt-get download cold (same versions)
t0=$(now); "$kiln" -q fetch node.toml --locked --cache-dir cache >/dev/null; t1=$(now)
"$kiln" -q fetch node.toml --locked --cache-dir cache >/dev/null; t2=$(now)
pins=$(awk -F' = ' '/^name = /{gsub(/"/,"",$2); n=$2} /^version = /{gsub(/"/,"",$2); if (n != "") print n"="$2; n=""}' node.lock)
mkdir debs && cd debs
t3=$(now); apt-get -qq "${aptopts[@]}" download $pins >/dev/null 2>&1; t4=$(now)
cd ..
bytes=$(awk -F' = ' '/^size = /{s+=$2} END{print s}' node.lock)
count=$(grep -c '^\[\[package\]\]' node.lock)
cold=$(secs "$t0" "$t1"); warm=$(secs "$t1" "$t2"); apt=$(secs "$t3" "$t4")
mibs() { echo "$bytes / 1048576 / $1" | bc -l; }
printf 'NODE set: %d packages, %d MiB\n' "$count" "$((bytes / 1048576))"
printf '%-34s %7.2f s\n' "kiln lock (indexes + resolve)" "$lock"
printf '%-34s %7.2f s   ratio %.2f\n' "apt-get update (indexes only)" "$update" "$(echo "$lock / $update" | bc -l)"
printf '%-34s %7.2f s  %6.1f MiB/s\n' "kiln fetch, cold cache" "$cold" "$(mibs "$cold")"
printf '%-34s %7.2f s  %6.1f MiB/s   ratio %.2f\n' "apt-get download, cold" "$apt" "$(mibs "$apt")" "$(echo "$cold / $apt" | bc -l)"
printf '%-34s %7.2f s  (verifies every cached blob)\n' "kiln fetch, warm cache" "$warm"
