#!/bin/bash
# Written by kiln: a dracut module that makes the node's state partition
# (/var) at first boot and keeps the node's identity there (docs/boot.md).

check() {
    require_binaries systemd-repart mkfs.ext4 || return 1
    return 255
}

depends() {
    echo systemd
}

install() {
    inst_multiple systemd-repart mkfs.ext4 mke2fs blkid mount umount readlink sed basename mkdir grep cat sleep mv cp rm
    inst_multiple -o /etc/mke2fs.conf
    inst_script "$moddir/kiln-state.sh" /usr/lib/kiln/kiln-state.sh
    inst_simple "$moddir/kiln-state.service" "$systemdsystemunitdir/kiln-state.service"
    mkdir -p "$initdir$systemdsystemunitdir/initrd-root-fs.target.wants"
    ln_r "$systemdsystemunitdir/kiln-state.service" \
        "$systemdsystemunitdir/initrd-root-fs.target.wants/kiln-state.service"
}
