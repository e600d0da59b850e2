//! Debian architecture names and wildcards (`any`, `linux-any`,
//! `any-arm64`, ...), matched the way dpkg-architecture's `debarch_is`
//! does.

/// dpkg's /usr/share/dpkg/tupletable (dpkg 1.21): `abi-libc-os-cpu` tuple
/// and the architecture name it belongs to. `<cpu>` stands for any entry
/// of [`CPUS`]; the first matching row wins, as in Dpkg::Arch.
const TUPLES: &[(&str, &str)] = &[
    ("eabi-uclibc-linux-arm", "uclibc-linux-armel"),
    ("base-uclibc-linux-<cpu>", "uclibc-linux-<cpu>"),
    ("eabihf-musl-linux-arm", "musl-linux-armhf"),
    ("base-musl-linux-<cpu>", "musl-linux-<cpu>"),
    ("ilp32-gnu-linux-arm64", "arm64ilp32"),
    ("eabihf-gnu-linux-arm", "armhf"),
    ("eabi-gnu-linux-arm", "armel"),
    ("abin32-gnu-linux-mips64r6el", "mipsn32r6el"),
    ("abin32-gnu-linux-mips64r6", "mipsn32r6"),
    ("abin32-gnu-linux-mips64el", "mipsn32el"),
    ("abin32-gnu-linux-mips64", "mipsn32"),
    ("abi64-gnu-linux-mips64r6el", "mips64r6el"),
    ("abi64-gnu-linux-mips64r6", "mips64r6"),
    ("abi64-gnu-linux-mips64el", "mips64el"),
    ("abi64-gnu-linux-mips64", "mips64"),
    ("spe-gnu-linux-powerpc", "powerpcspe"),
    ("x32-gnu-linux-amd64", "x32"),
    ("base-gnu-linux-<cpu>", "<cpu>"),
    ("eabihf-gnu-kfreebsd-arm", "kfreebsd-armhf"),
    ("base-gnu-kfreebsd-<cpu>", "kfreebsd-<cpu>"),
    ("base-gnu-knetbsd-<cpu>", "knetbsd-<cpu>"),
    ("base-gnu-kopensolaris-<cpu>", "kopensolaris-<cpu>"),
    ("base-gnu-hurd-<cpu>", "hurd-<cpu>"),
    ("base-bsd-dragonflybsd-<cpu>", "dragonflybsd-<cpu>"),
    ("base-bsd-freebsd-<cpu>", "freebsd-<cpu>"),
    ("base-bsd-openbsd-<cpu>", "openbsd-<cpu>"),
    ("base-bsd-netbsd-<cpu>", "netbsd-<cpu>"),
    ("base-bsd-darwin-<cpu>", "darwin-<cpu>"),
    ("base-sysv-aix-<cpu>", "aix-<cpu>"),
    ("base-sysv-solaris-<cpu>", "solaris-<cpu>"),
    ("eabi-uclibc-uclinux-arm", "uclinux-armel"),
    ("base-uclibc-uclinux-<cpu>", "uclinux-<cpu>"),
    ("base-tos-mint-m68k", "mint-m68k"),
];

/// The first column of dpkg's /usr/share/dpkg/cputable (dpkg 1.21).
const CPUS: &[&str] = &[
    "alpha",
    "amd64",
    "arc",
    "armeb",
    "arm",
    "arm64",
    "avr32",
    "hppa",
    "loong64",
    "i386",
    "ia64",
    "m32r",
    "m68k",
    "mips",
    "mipsel",
    "mipsr6",
    "mipsr6el",
    "mips64",
    "mips64el",
    "mips64r6",
    "mips64r6el",
    "nios2",
    "or1k",
    "powerpc",
    "powerpcel",
    "ppc64",
    "ppc64el",
    "riscv64",
    "s390",
    "s390x",
    "sh3",
    "sh3eb",
    "sh4",
    "sh4eb",
    "sparc",
    "sparc64",
    "tilegx",
];

/// Whether the architecture `arch` (e.g. `amd64`) is matched by `pattern`:
/// the same name, `any`, or a wildcard such as `linux-any` or `any-arm`.
/// Unknown architectures only match themselves and `any`.
pub fn matches(arch: &str, pattern: &str) -> bool {
    if arch == pattern || pattern == "any" {
        return true;
    }
    let (Some(real), Some(wild)) = (tuple(arch), wildcard_tuple(pattern)) else {
        return false;
    };
    real.iter().zip(wild).all(|(r, w)| w == "any" || *r == w)
}

/// The `[abi, libc, os, cpu]` tuple of an architecture name.
fn tuple(arch: &str) -> Option<[&str; 4]> {
    TUPLES.iter().find_map(|&(tuple, name)| {
        let cpu = match name.strip_suffix("<cpu>") {
            Some(prefix) => arch.strip_prefix(prefix).filter(|c| CPUS.contains(c))?,
            None if name == arch => tuple.rsplit('-').next()?,
            None => return None,
        };
        let mut parts = tuple.splitn(4, '-');
        Some([parts.next()?, parts.next()?, parts.next()?, cpu])
    })
}

/// dpkg's `debwildcard_to_debtuple`: missing leading parts of a wildcard
/// containing `any` are `any` themselves.
fn wildcard_tuple(pattern: &str) -> Option<[&str; 4]> {
    let parts: Vec<&str> = pattern.splitn(4, '-').collect();
    if !parts.contains(&"any") {
        return tuple(pattern);
    }
    Some(match parts[..] {
        [abi, libc, os, cpu] => [abi, libc, os, cpu],
        [libc, os, cpu] => ["any", libc, os, cpu],
        [os, cpu] => ["any", "any", os, cpu],
        _ => ["any"; 4],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples() {
        assert_eq!(tuple("amd64"), Some(["base", "gnu", "linux", "amd64"]));
        assert_eq!(tuple("armhf"), Some(["eabihf", "gnu", "linux", "arm"]));
        assert_eq!(
            tuple("mips64el"),
            Some(["abi64", "gnu", "linux", "mips64el"])
        );
        assert_eq!(tuple("hurd-i386"), Some(["base", "gnu", "hurd", "i386"]));
        assert_eq!(
            tuple("musl-linux-arm64"),
            Some(["base", "musl", "linux", "arm64"])
        );
        assert_eq!(tuple("mint-m68k"), Some(["base", "tos", "mint", "m68k"]));
        assert_eq!(tuple("nonsense"), None);
        assert_eq!(tuple("hurd-"), None);
    }

    #[test]
    fn wildcards() {
        let yes = [
            ("amd64", "amd64"),
            ("amd64", "any"),
            ("amd64", "linux-any"),
            ("amd64", "any-amd64"),
            ("amd64", "gnu-any-any"),
            ("amd64", "base-gnu-linux-any"),
            ("armhf", "any-arm"),
            ("armel", "linux-any"),
            ("x32", "any-amd64"),
            ("hurd-i386", "hurd-any"),
            ("hurd-i386", "any-i386"),
            ("mystery", "any"),
        ];
        let no = [
            ("amd64", "i386"),
            ("amd64", "hurd-any"),
            ("amd64", "any-arm64"),
            ("armhf", "armel"),
            ("armhf", "any-armhf"),
            ("hurd-i386", "linux-any"),
            ("mystery", "linux-any"),
            ("amd64", ""),
            ("amd64", "-"),
            ("amd64", "any-any-any-any-any"),
        ];
        for (arch, pattern) in yes {
            assert!(matches(arch, pattern), "{arch} should match {pattern}");
        }
        for (arch, pattern) in no {
            assert!(!matches(arch, pattern), "{arch} should not match {pattern}");
        }
    }
}
