#!/bin/sh
# Written by kiln. Runs in the initrd once the verified, read-only root is
# mounted at /sysroot: at first boot it adds the state partition after the
# root's (systemd-repart, taking the rest of the disk) and formats it with
# the image's /var as its first content; at every boot it mounts it on
# /sysroot/var (memory on a PXE boot) and binds the node's identity files
# (machine-id, hostname) from there over the image's empty ones.
set -eu

say() { echo "kiln-state: $*"; }
fail() { say "$*"; exit 1; }

# A PXE boot (kiln.pxe= on the command line) is diskless: /var is memory,
# holding a copy of the image's /var, and the node starts afresh at every
# boot. systemd takes the mount over from a unit in /run, which replaces
# the fstab's /var line (the disk's state partition).
diskless() {
    # The image's /var is under the mount point: copy it aside first.
    rm -rf /run/kiln/var-image
    mkdir -p /run/kiln
    cp -a /sysroot/var /run/kiln/var-image || fail "cannot copy the image's /var into memory"
    mount -t tmpfs -o mode=0755,nodev,nosuid,size=50% tmpfs /sysroot/var ||
        fail "cannot make /var in memory"
    cp -a /run/kiln/var-image/. /sysroot/var/ || fail "cannot copy the image's /var into memory"
    rm -rf /run/kiln/var-image
    mkdir -p /run/systemd/system
    cat >/run/systemd/system/var.mount <<'UNIT'
# Written by kiln's initramfs: a diskless (PXE) boot keeps /var in memory.
[Unit]
Description=/var in memory (diskless PXE boot)

[Mount]
What=tmpfs
Where=/var
Type=tmpfs
Options=mode=0755,nodev,nosuid,size=50%
UNIT
    part="memory (diskless: nothing is kept across boots)"
}

# The disk: the state partition after the verity partition, made at
# first boot.
state_partition() {
    label=kiln-var
    hash=$(sed -n 's/.*roothash=\([0-9a-f]\{64\}\).*/\1/p' /proc/cmdline)
    [ -n "$hash" ] || fail "no roothash= on the kernel command line"
    # The root partition's UUID is the first half of the root hash (DPS).
    uuid=$(echo "$hash" | sed 's/^\(.\{8\}\)\(.\{4\}\)\(.\{4\}\)\(.\{4\}\)\(.\{12\}\).*/\1-\2-\3-\4-\5/')
    root=$(readlink -f "/dev/disk/by-partuuid/$uuid") || fail "no partition $uuid (the root)"
    rootname=$(basename "$root")
    diskname=$(basename "$(readlink -f "/sys/class/block/$rootname/..")")
    disk=/dev/$diskname

    # The kernel learns of a partition added while the disk is in use without
    # its GPT name: ask the partition table itself.
    find_var() {
        for dir in /sys/class/block/"$diskname"/"$diskname"*; do
            [ -e "$dir/partition" ] || continue
            dev=/dev/$(basename "$dir")
            if blkid -p -o export "$dev" 2>/dev/null | grep -qx "PART_ENTRY_NAME=$label"; then
                echo "$dev"
                return 0
            fi
        done
        return 1
    }

    part=$(find_var) || part=
    if [ -z "$part" ]; then
        say "first boot: adding the state partition to $disk"
        systemd-repart --dry-run=no --root=/sysroot --seed=random --no-pager "$disk" ||
            fail "systemd-repart could not add /var to $disk: is the disk larger than the image (at least 1 GiB free)?"
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            part=$(find_var) && break
            sleep 0.5
        done
        [ -n "$part" ] || fail "the new state partition $label did not appear on $disk"
        say "formatting $part (ext4) with the image's /var"
        mkfs.ext4 -q -F -L "$label" -d /sysroot/var "$part" || fail "mkfs.ext4 $part failed"
    fi
    mount -t ext4 -o nodev,nosuid "$part" /sysroot/var ||
        fail "cannot mount $part on /var"
}

if grep -q 'kiln\.pxe=' /proc/cmdline; then
    diskless
else
    state_partition
fi
mkdir -p /sysroot/var/lib/kiln
# The node's machine-id, made once: systemd cannot write it through the
# bind mount itself, and would make a new one at every boot.
id_file=/sysroot/var/lib/kiln/machine-id
if ! grep -qx '[0-9a-f]\{32\}' "$id_file" 2>/dev/null; then
    sed 's/-//g' /proc/sys/kernel/random/uuid >"$id_file.new"
    mv "$id_file.new" "$id_file"
    say "made this node's machine-id"
fi
for id in machine-id hostname; do
    [ -e "/sysroot/var/lib/kiln/$id" ] || : >"/sysroot/var/lib/kiln/$id"
    mount --bind "/sysroot/var/lib/kiln/$id" "/sysroot/etc/$id" ||
        fail "cannot bind /var/lib/kiln/$id over /etc/$id"
done
say "/var is $part"
