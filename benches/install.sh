#!/usr/bin/env bash
# Install-stage benchmark, NODE set, warm kiln cache, real mirror of the build host:
#   kiln build three ways: with its install cache warm (the same lock built
#   before); as a patch rebuild after `kiln lock --update` (every maintainer
#   script runs again; the packages of a typical point release are new, the
#   others were decompressed by the build before); and with nothing cached
#   but the .debs (--no-install-cache)  vs
#   mmdebstrap --format=tar of the same suite, variant and packages, twice:
#   from a local repository of the very .debs kiln installs (no network in
#   either timing: the fair comparison) and from the mirror (as a user runs it).
# Then the K3s agent image of recipes/ built afresh, for scale, and the
# NODE set for arm64 (maintainer scripts under qemu-user) beside amd64's.
# Prints seconds, peak memory (GNU time's maximum resident set size), the
# ratios kiln / mmdebstrap (below 1 is faster; target ≤ 0.33 for the patch
# rebuild against local packages), what the scripts and decompression alone take (the floor
# of unpacking everything, then configuring), where kiln's time goes and the
# slowest maintainer scripts and triggers (`kiln build -v`).
# Needs root: both tools run maintainer scripts in a chroot.
#
# Usage: benches/install.sh          the benchmark (best of two runs each)
#        benches/install.sh smoke    every step once (`just bench-smoke`)
set -euo pipefail
mode=${1:-full}
case $mode in full | smoke) ;; *) echo "usage: $0 [smoke]" >&2; exit 2 ;; esac
if [ "$(id -u)" -ne 0 ]; then
    echo "benches/install.sh: skipped, needs root (kiln's install stage and mmdebstrap run chroots)"
    exit 0
fi
repo_dir=$(cd "$(dirname "$0")/.." && pwd)
kiln=${KILN:-$repo_dir/target/release/kiln}
runs=2
[ "$mode" = full ] || runs=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
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
# peak resident set of a `/usr/bin/time -v -o FILE` run, in MiB
peak() { awk -F': ' '/Maximum resident set size/{print $2 / 1024}' "$1"; }
fail() { echo "benches/install.sh: $1 failed:" >&2; cat "$2" >&2; exit 1; }

# warm kiln's package cache (not timed)
"$kiln" -q lock node.toml --cache-dir cache >/dev/null
"$kiln" -q fetch node.toml --locked --cache-dir cache >/dev/null
count=$(grep -c '^\[\[package\]\]' node.lock)

# A local repository of exactly the .debs kiln installs, for mmdebstrap (not
# timed): a flat repository apt trusts without a signature.
mkdir repo
find cache -type f | while read -r f; do
    name=$(dpkg-deb --show --showformat='${Package}_${Version}_${Architecture}' "$f" 2>/dev/null) || continue
    cp "$f" "repo/${name//:/%3a}.deb"
done
# (mmdebstrap picks the Essential set by suite: the Release names it)
(cd repo && apt-ftparchive packages . > Packages 2>/dev/null &&
    apt-ftparchive -o APT::FTPArchive::Release::Suite=bookworm \
        -o APT::FTPArchive::Release::Codename=bookworm release . > Release)
debs=$(find repo -name '*.deb' | wc -l)
[ "$debs" -eq "$count" ] || { echo "benches/install.sh: the local repository has $debs packages, the lock $count" >&2; exit 1; }

# kiln build, best of $runs runs: keeps the faster run's seconds, peak and
# log as time.NAME / log.NAME. Plain tar, as mmdebstrap's. `prepare` runs
# before each run, untimed.
prepare() { :; }
timed() {
    local name=$1 best="" run s t0 t1
    shift
    for run in $(seq "$runs"); do
        rm -rf out
        prepare
        # what earlier runs wrote reaches the disk before, not during, this one
        sync
        t0=$(now)
        /usr/bin/time -v -o "time.$run" "$kiln" -v build node.toml --locked --cache-dir cache -o out \
            --compression none "$@" >/dev/null 2>"log.$run" || fail "kiln build $*" "log.$run"
        t1=$(now)
        s=$(secs "$t0" "$t1")
        if [ -z "$best" ] || [ "$(echo "$s < $best" | bc -l)" -eq 1 ]; then
            best=$s; cp "time.$run" "time.$name"; cp "log.$run" "log.$name"
        fi
    done
    rm -rf out
    echo "$best"
}
fresh=$(timed fresh --no-install-cache)
"$kiln" -q build node.toml --locked --cache-dir cache -o out --compression none >/dev/null # fills the install cache
warm=$(timed warm)

# A patch rebuild: the new lock misses the install cache, and the packages
# a bookworm point release typically brings (glibc, OpenSSL, OpenSSH,
# systemd, tzdata: among the largest) are new, so they are decompressed
# afresh; the unpack cache has the others from the build before.
patch_set=(libc6 libc-bin libssl3 openssh-client openssh-server openssh-sftp-server
    systemd systemd-sysv libsystemd0 libsystemd-shared libudev1 udev tzdata)
patched=$(awk -v set=" ${patch_set[*]} " '
    /^\[\[package\]\]/ { name = "" }
    /^name = / { gsub(/"/, "", $3); name = $3 }
    /^sha256 = / { gsub(/"/, "", $3); if (index(set, " " name " ")) print name, $3 }' node.lock)
patched_count=$(echo "$patched" | grep -c . || true)
[ "$patched_count" -ge 10 ] || { echo "benches/install.sh: the lock has only $patched_count of the patch set: ${patch_set[*]}" >&2; exit 1; }
prepare() {
    rm -rf cache/installed
    echo "$patched" | while read -r _ sha; do rm -f "cache/unpacked/$sha"; done
}
patch=$(timed patch)
prepare() { :; }

# mmdebstrap, best of $runs runs as kiln's rows are; the local repository
# is bound into its chroot (its file-mirror-automount hook), not copied.
# Only the local timing is repeated: the mirror's depends on the network.
mm_args=(--variant=minbase --format=tar --quiet --include="$(IFS=,; echo "${packages[*]}")")
mm_local=""
for run in $(seq "$runs"); do
    rm -f "$work/mm-local.tar"
    sync
    t0=$(now)
    /usr/bin/time -v -o "time.mmlocal.$run" mmdebstrap "${mm_args[@]}" \
        --hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount \
        bookworm "$work/mm-local.tar" "deb [trusted=yes] file://$work/repo ./" >/dev/null 2>log.mmlocal ||
        fail "mmdebstrap from the local repository" log.mmlocal
    t1=$(now)
    s=$(secs "$t0" "$t1")
    if [ -z "$mm_local" ] || [ "$(echo "$s < $mm_local" | bc -l)" -eq 1 ]; then
        mm_local=$s; cp "time.mmlocal.$run" time.mmlocal
    fi
done
sync
t0=$(now)
/usr/bin/time -v -o time.mm mmdebstrap "${mm_args[@]}" \
    bookworm "$work/mm.tar" >/dev/null 2>log.mm || fail "mmdebstrap from the mirror" log.mm
t1=$(now)
mm=$(secs "$t0" "$t1")

# The K3s agent image of recipes/ (kernel, initramfs, disk), afresh; its
# packages fetched first, K3s itself left out (it is a download, not an install).
k3s_args=(--locked --cache-dir cache --optional-artifact k3s --no-install-cache -o k3s-out)
"$kiln" -q fetch "$repo_dir/recipes/k3s-agent.toml" --locked --cache-dir cache --optional-artifact k3s \
    >/dev/null 2>log.k3sfetch || fail "kiln fetch recipes/k3s-agent.toml" log.k3sfetch
sync
t0=$(now)
/usr/bin/time -v -o time.k3s "$kiln" -v build "$repo_dir/recipes/k3s-agent.toml" "${k3s_args[@]}" \
    >/dev/null 2>log.k3s || fail "kiln build recipes/k3s-agent.toml" log.k3s
t1=$(now)
k3s=$(secs "$t0" "$t1")
k3s_count=$(grep -oE 'configuring [0-9]+ packages' log.k3s | grep -oE '[0-9]+')

# The same NODE set for arm64, afresh: its maintainer scripts run under
# qemu-user (kiln registers it with binfmt_misc as root).
sed 's/^version = "1"$/version = "1"\narch = "arm64"/' node.toml > arm64.toml
"$kiln" -q lock arm64.toml --cache-dir cache >/dev/null
"$kiln" -q fetch arm64.toml --locked --cache-dir cache >/dev/null
sync
t0=$(now)
/usr/bin/time -v -o time.arm64 "$kiln" -v build arm64.toml --locked --cache-dir cache -o arm64-out \
    --compression none --no-install-cache >/dev/null 2>log.arm64 || fail "kiln build (arm64)" log.arm64
t1=$(now)
arm64=$(secs "$t0" "$t1")

printf 'NODE set: %d packages (minbase + %s)\n' "$count" "${packages[*]}"
row() { printf '%-50s %7.2f s  %7.1f MiB peak\n' "$1" "$2" "$(peak "$3")"; }
row "kiln build, install cache warm" "$warm" time.warm
row "kiln build, a patch rebuild ($patched_count packages new)" "$patch" time.patch
row "kiln build, nothing cached but the .debs" "$fresh" time.fresh
row "mmdebstrap --format=tar, local .debs" "$mm_local" time.mmlocal
row "mmdebstrap --format=tar, from the mirror" "$mm" time.mm
printf '%-50s %7.2f   (target ≤ 0.33; below 1 is faster)\n' "ratio kiln patch rebuild / mmdebstrap, local .debs" "$(ratio "$patch" "$mm_local")"
printf '%-50s %7.2f   (every package decompressed)\n' "ratio kiln afresh / mmdebstrap, local .debs" "$(ratio "$fresh" "$mm_local")"
printf '%-50s %7.2f\n' "ratio kiln afresh / mmdebstrap, from the mirror" "$(ratio "$fresh" "$mm")"
printf '%-50s %7.2f   (a rebuild of the same lock)\n' "ratio kiln warm / mmdebstrap, local .debs" "$(ratio "$warm" "$mm_local")"
echo "(all write a plain tar; kiln's package cache is warm; the local repository holds exactly kiln's .debs;"
echo " the patch rebuild's new packages: $(echo "$patched" | cut -d' ' -f1 | paste -sd' '))"
row "K3s agent image afresh ($k3s_count packages, disk)" "$k3s" time.k3s
row "NODE set for arm64 afresh (scripts under qemu-user)" "$arm64" time.arm64
printf '%-50s %7.2f\n' "ratio arm64 / amd64, packages configured afresh" "$(ratio "$arm64" "$fresh")"
echo "where kiln's time goes, a patch rebuild:"
grep -E ' in [0-9.]+m?s|verified in' log.patch | sed 's/^/  /' || true
echo "where kiln's time goes, nothing cached but the .debs:"
grep -E ' in [0-9.]+m?s|verified in' log.fresh | sed 's/^/  /' || true
# the rest: start-up, lockfile, normalising, the tree walk, the audit, the manifest
steps=$(grep -oE ' in [0-9.]+s' log.fresh | awk '{sub(/s$/, "", $2); t += $2} END{print t + 0}')
printf '  (the rest, %.1fs: lockfile, normalise, audit, manifest)\n' "$(echo "$fresh - $steps" | bc -l)"
# What the packages' own scripts and decompression cost, against what kiln
# adds: the first two alone bound the ratio of a build that unpacks every
# package before the first script runs.
scripts=$(grep -oE 'scripts ran [0-9.]+s' log.fresh | grep -oE '[0-9.]+' | head -1 || true)
unpacking=$(grep -oE 'unpacked [0-9]+ packages .* in [0-9.]+s' log.fresh | grep -oE '[0-9.]+s$' | tr -d s || true)
if [ -n "$scripts" ] && [ -n "$unpacking" ]; then
    printf '%-50s %7.2f s  (ratio %.2f: the floor of unpacking, then configuring)\n' \
        "the scripts and unpacking alone" "$(echo "$scripts + $unpacking" | bc -l)" \
        "$(ratio "$(echo "$scripts + $unpacking" | bc -l)" "$mm_local")"
    printf '%-50s %7.2f s  (ratio %.2f)\n' "kiln's own time besides" \
        "$(echo "$fresh - $scripts - $unpacking" | bc -l)" \
        "$(ratio "$(echo "$fresh - $scripts - $unpacking" | bc -l)" "$mm_local")"
else
    echo "benches/install.sh: kiln -v printed no scripts' or unpacking time" >&2
    exit 1
fi
echo "the slowest maintainer scripts and triggers:"
sed -n '/slowest steps:/,/other steps/p' log.fresh | sed 's/^kiln: /  /'
echo "with the install cache warm:"
grep -E ' in [0-9.]+m?s|install cache' log.warm | sed 's/^/  /' || true
echo "the K3s agent image, where its time goes:"
grep -E ' in [0-9.]+m?s' log.k3s | sed 's/^/  /' || true
