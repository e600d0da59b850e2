#!/bin/bash
# Written by kiln: a dracut module for PXE boots of a kiln bundle
# (kiln build --format pxe; docs/pxe.md). With kiln.pxe=URL on the kernel
# command line, the initramfs brings the network up (systemd-networkd,
# DHCP), and kiln-node fetches the signed manifest, the root image and its
# hash tree, checks them against the public keys and minimum version the
# bundle appends to this initramfs, and opens the root as /dev/mapper/root.
# Without kiln.pxe= none of it runs.

check() {
    require_binaries /usr/lib/kiln/kiln-node /usr/lib/systemd/systemd-networkd || return 1
    return 255
}

depends() {
    echo systemd systemd-veritysetup kiln-state
}

installkernel() {
    hostonly='' instmods =drivers/net loop dm-verity squashfs
}

install() {
    inst_multiple /usr/lib/kiln/kiln-node /usr/lib/systemd/systemd-networkd
    inst_multiple -o modprobe
    inst_multiple -o /etc/ssl/certs/ca-certificates.crt
    local unit
    for unit in systemd-networkd.service systemd-networkd.socket; do
        inst_simple "$systemdsystemunitdir/$unit"
        inst_simple "$moddir/pxe-only.conf" "$systemdsystemunitdir/$unit.d/50-kiln-pxe.conf"
    done
    # The links get their names here as they will in the root (a link
    # that is up cannot be renamed later), and DHCP.
    inst_rules 75-net-description.rules 80-net-setup-link.rules
    inst_multiple -o /usr/lib/systemd/network/99-default.link
    inst_simple "$moddir/pxe-dhcp.network" /etc/systemd/network/99-kiln-pxe.network
    # networkd drops its privileges to this user.
    local db
    for db in passwd group; do
        grep -q '^systemd-network:' "$initdir/etc/$db" 2>/dev/null ||
            grep '^systemd-network:' "$dracutsysrootdir/etc/$db" >>"$initdir/etc/$db"
    done
    inst_simple "$moddir/kiln-pxe.service" "$systemdsystemunitdir/kiln-pxe.service"
    mkdir -p "$initdir$systemdsystemunitdir/initrd-root-device.target.wants"
    ln_r "$systemdsystemunitdir/kiln-pxe.service" \
        "$systemdsystemunitdir/initrd-root-device.target.wants/kiln-pxe.service"
}
