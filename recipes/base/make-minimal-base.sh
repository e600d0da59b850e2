#!/bin/sh
# Writes a tiny, deterministic base rootfs tarball for recipes/minimal.toml:
# a handful of files made here, packed by GNU tar with every varying field
# pinned (order, mtime, owners, modes), so its sha256 is the same on every
# machine. Usage: make-minimal-base.sh OUTPUT.tar
set -eu
out=${1:?usage: $0 OUTPUT.tar}
umask 022
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root/etc" "$root/usr/bin" "$root/usr/lib" "$root/usr/share/doc/base" \
    "$root/var/cache/apt" "$root/var/log" "$root/tmp" "$root/root" "$root/home"
ln -s usr/bin "$root/bin"
ln -s usr/lib "$root/lib"
cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
ops:x:1000:1000:operator:/home/ops:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
cat > "$root/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
shadow:x:42:
ops:x:1000:
nogroup:x:65534:
GROUP
printf 'root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nops:!:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n' > "$root/etc/shadow"
cat > "$root/etc/os-release" <<'OS'
PRETTY_NAME="kiln minimal base"
NAME="kiln-minimal-base"
ID=kiln-minimal-base
OS
printf 'placeholder documentation\n' > "$root/usr/share/doc/base/README"
printf 'stale cache\n' > "$root/var/cache/apt/pkgcache.bin"
chmod 0640 "$root/etc/shadow"
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
tar --format=gnu --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -C "$root" -cf "$out.tmp" .
mv "$out.tmp" "$out"
