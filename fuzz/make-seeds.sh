#!/usr/bin/env bash
# Regenerates the seed inputs under fuzz/seeds/<target>/ (committed; `just
# fuzz` copies them into fuzz/corpus/, which git ignores). Real inputs made
# by real tools: minisign keys and signatures by the `minisign` binary, the
# manifest and rootfs archive by kiln itself, tar archives by GNU tar and
# Python's tarfile. The minisign key pair is new on every run; the
# minisign_signature target verifies against seeds/minisign_public_key/
# minisign.pub, so its seeds always stay consistent.
#
# Needs: minisign, python3, zstd, dpkg-deb; builds kiln (release) first.
# Run from anywhere: bash fuzz/make-seeds.sh
set -euo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$fuzz")"
seeds="$fuzz/seeds"
# Private keys, even throwaway ones, are kept under tests/ only.
secret_seeds="$root/tests/data/fuzz-seeds/minisign_secret_key"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

rm -rf "$seeds" "$secret_seeds"
mkdir -p "$seeds"/{minisign_signature,minisign_public_key,manifest,deb822,relations,version,tar,deb} "$secret_seeds"

# --- minisign: key pair, signatures, an encrypted key at a cheap KDF cost ---
# The data the minisign_signature target verifies signatures against.
printf 'kiln fuzz data\n' >"$work/data"
minisign -G -W -p "$work/minisign.pub" -s "$work/minisign.key" >/dev/null
minisign -S -s "$work/minisign.key" -m "$work/data" -x "$work/prehashed.minisig" \
    -c "signature from minisign secret key" -t "timestamp:1700000000	file:data	hashed" >/dev/null
minisign -S -l -s "$work/minisign.key" -m "$work/data" -x "$work/legacy.minisig" \
    -t "timestamp:1700000000	file:data" >/dev/null
minisign -V -p "$work/minisign.pub" -m "$work/data" -x "$work/prehashed.minisig" -q
cp "$work/minisign.pub" "$seeds/minisign_public_key/minisign.pub"
sed -n 2p "$work/minisign.pub" >"$seeds/minisign_public_key/bare-line.pub"
cp "$work/prehashed.minisig" "$work/legacy.minisig" "$seeds/minisign_signature/"
cp "$work/minisign.key" "$secret_seeds/throwaway-unencrypted.key"
# minisign -G -W leaves the checksum zero; write a checksummed copy, and one
# encrypted with the password "pw" (the target's) at scrypt N=2^10, r=8,
# p=1 (opslimit 32768, memlimit 2^20): minisign's own cost (N=2^20) is over
# the target's cap, so such a key would never get past it.
python3 - "$work/minisign.key" "$secret_seeds" <<'PY'
import base64, hashlib, os, struct, sys
lines = open(sys.argv[1]).read().splitlines()
raw = bytearray(base64.b64decode(lines[1]))
assert len(raw) == 158 and raw[:6] == b"Ed\0\0B2", raw[:6]
key_id, keypair = bytes(raw[54:62]), bytes(raw[62:126])
checksum = hashlib.blake2b(b"Ed" + key_id + keypair, digest_size=32).digest()
payload = key_id + keypair + checksum
def write(name, header, body):
    text = "untrusted comment: %s\n%s\n" % (header, base64.b64encode(body).decode())
    open(os.path.join(sys.argv[2], name), "w").write(text)
kind = "secret key"
write("throwaway-unencrypted-checksummed.key", "minisign unencrypted " + kind,
      b"Ed\0\0B2" + bytes(32) + bytes(16) + payload)
salt = bytes(range(32))
ops, mem = 32768, 1 << 20
stream = hashlib.scrypt(b"pw", salt=salt, n=1 << 10, r=8, p=1, dklen=104)
write("throwaway-encrypted-pw.key", "minisign encrypted " + kind,
      b"EdScB2" + salt + struct.pack("<QQ", ops, mem)
      + bytes(a ^ b for a, b in zip(payload, stream)))
PY

# --- manifest and rootfs archive: what `kiln build` writes ---
(cd "$root" && cargo build --release --locked --bin kiln --quiet)
kiln="$root/target/release/kiln"
# In a copy, so the work tree is left alone.
mkdir "$work/repo"
cp -r "$root/recipes" "$root/overlays" "$work/repo/"
sh "$work/repo/recipes/base/make-minimal-base.sh" "$work/repo/recipes/base/minimal-base.tar" >/dev/null
"$kiln" build "$work/repo/recipes/minimal.toml" -o "$work/out" >"$work/build.log" 2>&1 ||
    { cat "$work/build.log" >&2; exit 1; }
cp "$work/out/minimal-0.1.0.manifest.json" "$seeds/manifest/minimal.manifest.json"
# The tar stream without its trailing padding (the end marker is kept).
zstd -dq "$work/out/minimal-0.1.0.rootfs.tar.zst" -o "$work/rootfs.tar"
python3 - "$work/rootfs.tar" "$seeds/tar/kiln-rootfs.tar" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1]) as tf:
    tf.getmembers()
    end = tf.offset
open(sys.argv[2], "wb").write(open(sys.argv[1], "rb").read()[:end + 1024])
PY

# --- tar: member kinds and extensions kiln reads, and hostile ones ---
python3 - "$seeds/tar" <<'PY'
import io, os, sys, tarfile
def archive(name, fmt, members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, data in members:
            info.mtime = 1700000000
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
        end = tf.offset
    open(os.path.join(sys.argv[1], name), "wb").write(buf.getvalue()[:end + 1024])
def m(name, kind=tarfile.REGTYPE, data=None, mode=0o644, **kw):
    info = tarfile.TarInfo(name)
    info.type, info.mode = kind, mode
    if data is not None:
        info.size = len(data)
    for k, v in kw.items():
        setattr(info, k, v)
    return info, data
archive("pax-kinds.tar", tarfile.PAX_FORMAT, [
    m("./", tarfile.DIRTYPE, mode=0o755),
    m("./usr/bin/ping", data=b"\x7fELF", mode=0o4755,
      pax_headers={"SCHILY.xattr.security.capability": "\x01\x00\x00\x02",
                   "uid": "100000", "gid": "7"}),
    m("./usr/bin/ping6", tarfile.LNKTYPE, linkname="./usr/bin/ping"),
    m("./etc/localtime", tarfile.SYMTYPE, linkname="/usr/share/zoneinfo/UTC"),
    m("./dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
    m("./dev/sda", tarfile.BLKTYPE, mode=0o660, devmajor=8, devminor=0),
    m("./run/initctl", tarfile.FIFOTYPE, mode=0o600),
])
long = "./opt/" + "d" * 120 + "/file"
archive("gnu-long-names.tar", tarfile.GNU_FORMAT, [
    m(long, data=b"long\n"),
    m("./opt/link", tarfile.SYMTYPE, linkname="/" + "t" * 150),
])
# Refused: a file written through a symlink, and a name with "..".
archive("escape.tar", tarfile.USTAR_FORMAT, [
    m("./etc", tarfile.SYMTYPE, linkname="/tmp"),
    m("./etc/passwd", data=b"root::0:0::/:/bin/sh\n"),
    m("./../outside", data=b"x"),
])
PY

# --- Debian control data ---
cat >"$seeds/deb822/packages" <<'D'
Package: libc6
Source: glibc
Version: 2.36-9+deb12u4
Architecture: amd64
Multi-Arch: same
Pre-Depends: libgcc-s1
Depends: libc6 (>= 2.34), foo:any | bar [amd64 i386] <!nocheck>
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
 .
 Second paragraph.
Filename: pool/main/g/glibc/libc6_2.36-9+deb12u4_amd64.deb
Size: 2757936
SHA256: 7ba1fb80d6e2e5c8a7f1a1b3e5c1d2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9

Package: base-files
Version: 12.4+deb12u5
Architecture: amd64
Essential: yes
Priority: required
D
cat >"$seeds/deb822/release" <<'D'
Origin: Debian
Suite: stable
Codename: bookworm
Date: Sat, 10 Feb 2024 09:51:03 UTC
Architectures: all amd64 arm64
Components: main contrib non-free-firmware
SHA256:
 0ed6d4c8891eb86358b94bb35d9e4da1ca3d1a5a5ebf46ea3d3c7e2c1f3a6e9b   738242 contrib/Contents-all
 d09f8c5e2b2c4a8b0c1e9e7e52f3d4e7c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6 57319 main/binary-amd64/Packages.xz
D
printf '# dpkg status\nPackage: dpkg\r\nStatus: install ok installed\nConffiles:\n /etc/dpkg/dpkg.cfg f8b6e0a3\n# between continuation lines\n /etc/cron.daily/dpkg 94f25f5 obsolete\n\t\nPackage: apt\nVersion: 2.6.1\n' \
    >"$seeds/deb822/status"

printf 'libc6 (>= 2.34), libgcc-s1 (>> 1:3.0), foo:any | bar [amd64 i386] <!nocheck>' \
    >"$seeds/relations/depends"
printf 'debhelper-compat (= 13), dh-python <!nodoc>,\n python3-all:native [linux-any] <!nocheck> <cross>, libfoo-dev (<< 2.0~) [!hurd-any !kfreebsd-any]' \
    >"$seeds/relations/build-depends"

# Three versions a line: the version target checks the ordering contract on them.
printf '1:2.3-4\n2.3-4\n1.0~rc1+dfsg-1ubuntu2\n' >"$seeds/version/epochs"
printf '1.0\n1.00\n1.0-0\n' >"$seeds/version/equal"
printf '2.36-9+deb12u4\n2.36-9~bpo11+1\n2.36~~a-1.a.b\n' >"$seeds/version/tilde"

# --- .deb: a small package by dpkg-deb, each member compression it writes ---
pkg="$work/pkg"
mkdir -p "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/etc"
printf 'Package: seed\nVersion: 1:1.0-1\nArchitecture: amd64\nMulti-Arch: same\nMaintainer: kiln <fuzz@kiln.invalid>\nDescription: fuzz seed\n' \
    >"$pkg/DEBIAN/control"
printf '/etc/seed.conf\n' >"$pkg/DEBIAN/conffiles"
printf '#!/bin/sh\nexit 0\n' >"$pkg/DEBIAN/postinst"
chmod 755 "$pkg/DEBIAN/postinst"
printf 'setting = 1\n' >"$pkg/etc/seed.conf"
printf '#!/bin/sh\n' >"$pkg/usr/bin/seed"
chmod 755 "$pkg/usr/bin/seed"
ln "$pkg/usr/bin/seed" "$pkg/usr/bin/seed-hard"
ln -s seed "$pkg/usr/bin/seed-link"
for z in gzip xz zstd none; do
    dpkg-deb --root-owner-group -Z"$z" --build "$pkg" "$seeds/deb/seed-$z.deb" >/dev/null
done

echo "seeds: $(find "$seeds" -type f | wc -l) files, $(find "$seeds" -type f -exec cat {} + | wc -c) bytes"
