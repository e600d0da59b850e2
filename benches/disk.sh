#!/usr/bin/env bash
# shellcheck disable=SC2016  # hooks and --format strings expand later, not here
# Bootable-disk benchmark, BOOT set, real mirror of the build host:
#   kiln build --format raw (GPT, ESP with a UKI, squashfs root + dm-verity),
#   and each other output (qcow2, vhd, gce, pxe) alone from the warm caches,
#   vs the pipeline a user would otherwise script for the same disk:
#   mmdebstrap (same suite, variant and packages; the kernel's hook runs
#   dracut with a verity configuration) to a tar, sqfstar -reproducible,
#   veritysetup format, a UKI with objcopy and the systemd stub, a FAT ESP
#   (mkfs.fat --invariant, mcopy) and a GPT (sfdisk, dd).
# Prints seconds, peak memory (GNU time's maximum resident set size, the
# largest process of each run), the ratio kiln / peer (goal ≤ 0.25; below 1
# is faster) and the sizes of both disks. One run each, warm caches: kiln's
# downloads are fetched first (untimed); mmdebstrap's apt cache is seeded
# with the same .debs (it still fetches the indexes).
# Needs root: kiln's install stage and mmdebstrap run chroots.
#
# Usage: benches/disk.sh          the benchmark (a few minutes)
#        benches/disk.sh smoke    the cheap check `just bench-smoke` runs:
#   kiln locks the benchmark's recipe (parses [boot] and resolves the boot
#   set against the mirror, no download) and the peer's steps after
#   mmdebstrap run on a small tree with the host's stub and stand-in kernel
#   and initrd; the disk is read back (sfdisk, veritysetup verify, objdump,
#   mdir). Neither kiln's disk nor mmdebstrap is built (the test suite and
#   install.sh cover them); the numbers mean nothing.
set -euo pipefail
mode=${1:-full}
case $mode in full | smoke) ;; *) echo "usage: $0 [smoke]" >&2; exit 2 ;; esac
if [ "$mode" = full ] && [ "$(id -u)" -ne 0 ]; then
    echo "benches/disk.sh: skipped, needs root (kiln's install stage and mmdebstrap run chroots)"
    exit 0
fi
kiln=${KILN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/kiln}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
suite=bookworm
packages=(systemd systemd-sysv udev kmod linux-image-cloud-amd64 dracut systemd-boot-efi
    e2fsprogs systemd-resolved dbus apparmor openssh-server)
cmdline="console=ttyS0,115200"
export SOURCE_DATE_EPOCH=1700000000
cat > boot.toml <<TOML
[image]
name = "boot"
version = "1"
source_date_epoch = $SOURCE_DATE_EPOCH
[debian]
suite = "$suite"
variant = "minbase"
packages = [$(printf '"%s", ' "${packages[@]}")]
[audit]
fail_on = "none"
[boot]
formats = ["raw"]
cmdline = ["$cmdline"]
TOML
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }
peak() { awk -F': ' '/Maximum resident set size/{print $2 / 1024}' "$1"; }
mib() { echo "$(stat -c %s "$1") / 1048576" | bc -l; }
# partition N's start or size (FIELD) in sectors, from the GPT
part() { sfdisk -d "$1" | awk -v n="$2" -v f="$3" -F"$3= *" '$1 ~ "[^0-9]" n " :" {split($2, a, ","); print a[1]}'; }
part_mib() { echo "$(part "$1" "$2" size) / 2048" | bc; }
# bytes used by the squashfs in partition 2 (its superblock's bytes_used)
sqfs_mib() { echo "$(od -An -t u8 -j $(($(part "$1" 2 start) * 512 + 40)) -N 8 "$1") / 1048576" | bc -l; }

# The peer's disk from a root tar: what a user scripts after mmdebstrap.
# assemble ROOT.tar KERNEL INITRD STUB OS-RELEASE OUT.raw
assemble() {
    local tar=$1 kernel=$2 initrd=$3 stub=$4 osrel=$5 out=$6 d hash esp root verity
    d=$(dirname "$out")
    sqfstar -reproducible -comp zstd -quiet -no-progress "$d/root.sqfs" < "$tar"
    # fixed salt and UUID: reproducible, like the rest
    hash=$(veritysetup format --salt="$(printf '%064d' 0)" --uuid=00000000-0000-4000-8000-000000000000 \
        "$d/root.sqfs" "$d/root.verity" | awk '/^Root hash:/ {print $3}')
    echo "root=/dev/mapper/root roothash=$hash $cmdline" > "$d/cmdline"
    # the UKI as systemd 252's stub documents it: objcopy adds sections at fixed addresses
    objcopy --add-section .osrel="$osrel" --change-section-vma .osrel=0x20000 \
        --add-section .cmdline="$d/cmdline" --change-section-vma .cmdline=0x30000 \
        --add-section .linux="$kernel" --change-section-vma .linux=0x2000000 \
        --add-section .initrd="$initrd" --change-section-vma .initrd=0x3000000 \
        "$stub" "$d/uki.efi"
    # the ESP: room for two UKIs, at least 64 MiB (FAT32)
    esp=$(($(stat -c %s "$d/uki.efi") * 2 / 1048576 + 5))
    [ "$esp" -ge 64 ] || esp=64
    rm -f "$d/esp.img"
    export MTOOLS_SKIP_CHECK=1 TZ=UTC
    mkfs.fat --invariant -i 4b494c4e -F 32 -S 512 -C "$d/esp.img" $((esp * 1024)) >/dev/null
    mmd -i "$d/esp.img" ::/EFI ::/EFI/BOOT
    mcopy -i "$d/esp.img" "$d/uki.efi" ::/EFI/BOOT/BOOTX64.EFI
    root=$((($(stat -c %s "$d/root.sqfs") + 1048575) / 1048576))
    verity=$((($(stat -c %s "$d/root.verity") + 1048575) / 1048576))
    # the GPT: Discoverable Partitions types; root and verity UUIDs are the
    # halves of the root hash, where systemd-veritysetup-generator looks
    uuid() { echo "${1:0:8}-${1:8:4}-${1:12:4}-${1:16:4}-${1:20:12}"; }
    rm -f "$out"
    truncate -s $(((esp + root + verity + 2) * 1048576)) "$out"
    sfdisk -q "$out" <<EOF
label: gpt
start=1MiB, size=${esp}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
size=${root}MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$(uuid "${hash:0:32}"), name=root, attrs=GUID:60
size=${verity}MiB, type=2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5, uuid=$(uuid "${hash:32}"), name=root-verity, attrs=GUID:60
EOF
    dd if="$d/esp.img" of="$out" bs=1M seek=1 conv=notrunc status=none
    dd if="$d/root.sqfs" of="$out" bs=1M seek=$((1 + esp)) conv=notrunc status=none
    dd if="$d/root.verity" of="$out" bs=1M seek=$((1 + esp + root)) conv=notrunc status=none
    echo "$hash" > "$d/roothash"
}

if [ "$mode" = smoke ]; then
    "$kiln" -q lock boot.toml --cache-dir cache >/dev/null
    echo "kiln lock: the BOOT set resolves to $(grep -c '^\[\[package\]\]' boot.lock) packages"
    mkdir peer
    (cd /usr/share/perl5 && tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$work/small.tar" ./*)
    head -c 1048576 /dev/urandom > kernel
    head -c 1048576 /dev/urandom > initrd
    t0=$(now)
    assemble small.tar kernel initrd /usr/lib/systemd/boot/efi/linuxx64.efi.stub \
        /usr/lib/os-release peer/peer.raw
    t1=$(now)
    # read back: three partitions of the right types, the verity tree
    # matches the root, the UKI has its sections, the ESP holds it
    sfdisk -d peer/peer.raw | grep -c 'type=\(C12A7328\|4F68BCE3\|2C7357ED\)' | grep -qx 3
    veritysetup verify peer/root.sqfs peer/root.verity "$(cat peer/roothash)"
    [ "$(objdump -h peer/uki.efi | grep -cE ' \.(osrel|cmdline|linux|initrd) ')" -eq 4 ]
    mdir -i peer/esp.img ::/EFI/BOOT | grep -q BOOTX64
    printf 'peer assembly of a %.1f MiB tree: %.2f s, disk %.1f MiB (root %s MiB)\n' \
        "$(mib small.tar)" "$(secs "$t0" "$t1")" "$(mib peer/peer.raw)" "$(part_mib peer/peer.raw 2)"
    echo "benches/disk.sh smoke: ok"
    exit 0
fi

load=$(cut -d' ' -f1 /proc/loadavg)
# warm kiln's download cache (not timed)
"$kiln" -q lock boot.toml --cache-dir cache >/dev/null
"$kiln" -q fetch boot.toml --locked --cache-dir cache >/dev/null
count=$(grep -c '^\[\[package\]\]' boot.lock)
# seed mmdebstrap's apt cache with the same .debs (not timed)
mkdir aptcache
find cache -type f | while read -r f; do
    name=$(dpkg-deb --show --showformat='${Package}_${Version}_${Architecture}' "$f" 2>/dev/null) || continue
    cp "$f" "aptcache/${name//:/%3a}.deb"
done
seeded=$(find aptcache -name '*.deb' | wc -l)

# kiln: packages configured afresh (install cache cold; fills it), then
# the same lock again with the install cache warm (a rebuild)
kiln_run() {
    rm -rf out
    local t0 t1
    t0=$(now)
    /usr/bin/time -v -o "time.$1" "$kiln" build boot.toml --locked --cache-dir cache -o out \
        --format raw >/dev/null 2>"log.$1" || { cat "log.$1" >&2; exit 1; }
    t1=$(now)
    secs "$t0" "$t1"
}
afresh=$(kiln_run afresh)
cp out/boot-1.raw kiln.raw
warm=$(kiln_run warm)
# each output alone, from the warm caches (the PXE bundle is signed)
"$kiln" -q keygen --no-password -o bench >/dev/null
formats=(raw qcow2 vhd gce pxe)
declare -A format_secs
for format in "${formats[@]}"; do
    rm -rf out
    t0=$(now)
    "$kiln" build boot.toml --locked --cache-dir cache -o out --format "$format" --key bench.key \
        >/dev/null 2>"log.$format" || { cat "log.$format" >&2; exit 1; }
    format_secs[$format]=$(secs "$t0" "$(now)")
done

# the peer, from the host's mirror (apt's sources for the suite, -updates and -security)
mapfile -t mirrors < <(apt-get indextargets --format 'deb $(REPO_URI) $(RELEASE) $(COMPONENT)' \
    'Identifier: Packages' | grep -E " $suite(-updates|-security)? " | sort -u)
peer() { # INCLUDE MIRROR...
    local t0 t1 t2 include=$1
    shift
    t0=$(now)
    # the kernel's hook runs dracut: configure it for a verity root first
    mmdebstrap --variant=minbase --format=tar --quiet --include="$include" \
        --skip=essential/unlink \
        --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
        --setup-hook='sync-in aptcache /var/cache/apt/archives/' \
        --essential-hook='mkdir -p "$1/etc/dracut.conf.d" && printf "%s\n" hostonly=no reproducible=yes compress=gzip \
            "add_dracutmodules+=\" systemd-veritysetup \"" \
            "add_drivers+=\" dm-verity squashfs virtio_blk virtio_scsi virtio_pci nvme sd_mod ahci \"" \
            > "$1/etc/dracut.conf.d/10-verity.conf"' \
        --customize-hook='sync-out /var/cache/apt/archives aptcache' \
        --customize-hook='mkdir -p peer/boot && cp "$1"/boot/vmlinuz-* "$1"/boot/initrd.img-* peer/boot/' \
        --customize-hook='cp "$1"/usr/lib/systemd/boot/efi/linuxx64.efi.stub "$1"/usr/lib/os-release peer/' \
        "$suite" peer/root.tar "$@"
    t1=$(now)
    assemble peer/root.tar peer/boot/vmlinuz-* peer/boot/initrd.img-* peer/linuxx64.efi.stub \
        peer/os-release peer/peer.raw
    t2=$(now)
    printf '%s %s\n' "$(secs "$t0" "$t1")" "$(secs "$t1" "$t2")" > peer/steps
}
mkdir peer
t0=$(now)
export -f peer assemble now secs
export cmdline suite
/usr/bin/time -v -o time.peer bash -c 'peer "$@"' peer "$(IFS=,; echo "${packages[*]}")" "${mirrors[@]}" \
    >/dev/null 2>log.peer \
    || { cat log.peer >&2; exit 1; }
t1=$(now)
peer=$(secs "$t0" "$t1")
read -r mm asm < peer/steps
downloaded=$(($(find aptcache -name '*.deb' | wc -l) - seeded))

ratio=$(echo "$afresh / $peer" | bc -l)
met() { if [ "$(echo "$1 <= 0.25" | bc -l)" -eq 1 ]; then echo met; else echo "not met"; fi; }
printf 'BOOT set: %d packages (minbase + %s)\n' "$count" "${packages[*]}"
printf '%d cores; load average at the start %s, now %s (other work skews the seconds)\n' \
    "$(nproc)" "$load" "$(cut -d' ' -f1 /proc/loadavg)"
printf '%-46s %7.2f s  %7.1f MiB peak\n' "kiln build --format raw, configured afresh" "$afresh" "$(peak time.afresh)"
printf '%-46s %7.2f s  %7.1f MiB peak\n' "kiln build --format raw, install cache warm" "$warm" "$(peak time.warm)"
for format in "${formats[@]}"; do
    printf '  %-44s %7.2f s\n' "--format $format alone, caches warm" "${format_secs[$format]}"
done
printf '%-46s %7.2f s  %7.1f MiB peak\n' "peer: mmdebstrap + sqfstar, veritysetup, ..." "$peer" "$(peak time.peer)"
printf '  %-44s %7.2f s\n' "mmdebstrap --format=tar (runs dracut)" "$mm" "assembly (squashfs, verity, UKI, ESP, GPT)" "$asm"
printf '%-46s %7.2f   (goal ≤ 0.25: %s; below 1 is faster)\n' "ratio kiln (afresh) / peer" "$ratio" "$(met "$ratio")"
ratio=$(echo "$warm / $peer" | bc -l)
printf '%-46s %7.2f   (goal ≤ 0.25: %s; a rebuild of the same lock)\n' "ratio kiln (install cache warm) / peer" "$ratio" "$(met "$ratio")"
printf '%-24s %10s %10s\n' "MiB" "kiln" "peer" "disk" "$(printf %.1f "$(mib kiln.raw)")" "$(printf %.1f "$(mib peer/peer.raw)")"
n=1
for label in "ESP partition" "root partition" "verity partition"; do
    printf '%-24s %10s %10s\n' "$label" "$(part_mib kiln.raw $n)" "$(part_mib peer/peer.raw $n)"
    n=$((n + 1))
done
printf '%-24s %10.1f %10.1f\n' "squashfs in the root" "$(sqfs_mib kiln.raw)" "$(sqfs_mib peer/peer.raw)"
echo "(kiln's packages and mmdebstrap's .debs were cached; mmdebstrap fetched the indexes and $downloaded package(s))"
echo "where kiln's time goes, configured afresh:"
grep -E ' in [0-9.]+m?s' log.afresh | sed 's/^/  /' || true
echo "with the install cache warm:"
grep -E ' in [0-9.]+m?s|install cache' log.warm | sed 's/^/  /' || true
echo "boot time to SSH, from the disk and over PXE: benches/boot.sh"
