//! Debian version numbers (deb-version(7)) and dpkg's ordering of them.

use kiln_diag::quote;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// A Debian version `[epoch:]upstream[-revision]`.
///
/// Equality, ordering and hashing follow dpkg, not the text: `1.0`,
/// `0:1.0`, `1.00`, `1.0-0` and `1.0.` are all equal. [`fmt::Display`]
/// still prints the text exactly as parsed.
#[derive(Clone)]
pub struct Version {
    text: Box<str>,
    epoch: u32,
    /// Byte range of the upstream part in `text`; a `-` and the revision
    /// follow it when present.
    upstream_start: usize,
    upstream_end: usize,
}

/// Why a string is not a Debian version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionError {
    input: String,
    reason: String,
}

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid version {}: {}", quote(&self.input), self.reason)
    }
}

impl std::error::Error for VersionError {}

impl Version {
    /// The epoch; 0 when the version has none.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    pub fn upstream(&self) -> &str {
        &self.text[self.upstream_start..self.upstream_end]
    }

    /// The Debian revision; empty when the version has none.
    pub fn revision(&self) -> &str {
        self.text.get(self.upstream_end + 1..).unwrap_or("")
    }

    /// The version exactly as parsed (minus surrounding blanks).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Version {
    type Err = VersionError;

    /// Parses like dpkg's `parseversion`, except that characters dpkg only
    /// warns about are rejected. An upstream part that does not start with
    /// a digit is accepted, as dpkg does.
    fn from_str(s: &str) -> Result<Self, VersionError> {
        let fail = |reason: String| VersionError {
            input: s.to_string(),
            reason,
        };
        let text = s.trim_matches([' ', '\t']);
        if text.is_empty() {
            return Err(fail("version string is empty".into()));
        }
        if text.contains([' ', '\t']) {
            return Err(fail("version string has embedded spaces".into()));
        }
        let (epoch, upstream_start) = match text.find(':') {
            None => (0, 0),
            Some(colon) => {
                let digits = &text[..colon];
                if digits.is_empty() {
                    return Err(fail("epoch is empty".into()));
                }
                if !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(fail(format!("epoch {} is not a number", quote(digits))));
                }
                // dpkg stores the epoch in an int.
                let epoch = digits
                    .parse::<u32>()
                    .ok()
                    .filter(|&e| e <= i32::MAX as u32)
                    .ok_or_else(|| fail(format!("epoch {} is too big", quote(digits))))?;
                if colon + 1 == text.len() {
                    return Err(fail("nothing after the epoch colon".into()));
                }
                (epoch, colon + 1)
            }
        };
        let upstream_end = match text[upstream_start..].rfind('-') {
            Some(hyphen) => upstream_start + hyphen,
            None => text.len(),
        };
        if upstream_end + 1 == text.len() {
            return Err(fail("revision is empty".into()));
        }
        let upstream = &text[upstream_start..upstream_end];
        if upstream.is_empty() {
            return Err(fail("upstream version is empty".into()));
        }
        let allowed = |c: char, extra: &str| c.is_ascii_alphanumeric() || extra.contains(c);
        if let Some(c) = upstream.chars().find(|&c| !allowed(c, ".+-~:")) {
            return Err(fail(format!("invalid character {c:?} in upstream version")));
        }
        let revision = text.get(upstream_end + 1..).unwrap_or("");
        if let Some(c) = revision.chars().find(|&c| !allowed(c, ".+~")) {
            return Err(fail(format!("invalid character {c:?} in revision")));
        }
        Ok(Version {
            text: text.into(),
            epoch,
            upstream_start,
            upstream_end,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({:?})", &*self.text)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(self.upstream(), other.upstream()))
            .then_with(|| verrevcmp(self.revision(), other.revision()))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl Hash for Version {
    /// Hashes the parts with leading zeros of every digit run removed:
    /// versions that compare equal have the same digit-run values and the
    /// same non-digit runs, hence the same stripped text.
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u32(self.epoch);
        for part in [self.upstream(), self.revision()] {
            let mut run_start = true;
            for b in part.bytes() {
                if b.is_ascii_digit() {
                    if b == b'0' && run_start {
                        continue;
                    }
                    run_start = false;
                } else {
                    run_start = true;
                }
                state.write_u8(b);
            }
            // Not a legal version character: separates the two parts.
            state.write_u8(0xff);
        }
    }
}

/// Sort weight of one character in a non-digit run; `None` is the end of
/// the string. Mirrors `order()` in dpkg's lib/dpkg/version.c.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`: alternately compares non-digit runs character by
/// character and digit runs by numeric value. Digit runs are compared as
/// strings (length, then text, after stripping leading zeros) so arbitrarily
/// long numbers never overflow.
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        loop {
            let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
            let non_digit = |c: Option<u8>| c.is_some_and(|c| !c.is_ascii_digit());
            if !non_digit(ca) && !non_digit(cb) {
                break;
            }
            // Equal weights here imply two real characters, so neither
            // index moves past the end.
            let (oa, ob) = (order(ca), order(cb));
            if oa != ob {
                return oa.cmp(&ob);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let run_a = digit_run(&a[i..]);
        let run_b = digit_run(&b[j..]);
        let ord = run_a.len().cmp(&run_b.len()).then(run_a.cmp(run_b));
        if ord != Ordering::Equal {
            return ord;
        }
        i += run_a.len();
        j += run_b.len();
    }
    Ordering::Equal
}

fn digit_run(s: &[u8]) -> &[u8] {
    let len = s.iter().take_while(|b| b.is_ascii_digit()).count();
    &s[..len]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn v(s: &str) -> Version {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn hash(v: &Version) -> u64 {
        let mut h = DefaultHasher::new();
        v.hash(&mut h);
        h.finish()
    }

    #[test]
    fn splits_parts() {
        let x = v("2:1.0-rc1-3ubuntu1");
        assert_eq!(
            (x.epoch(), x.upstream(), x.revision()),
            (2, "1.0-rc1", "3ubuntu1")
        );
        let x = v("1.0");
        assert_eq!((x.epoch(), x.upstream(), x.revision()), (0, "1.0", ""));
        let x = v("1:2:3-4");
        assert_eq!((x.epoch(), x.upstream(), x.revision()), (1, "2:3", "4"));
    }

    #[test]
    fn display_keeps_original_text() {
        for s in ["0:1.0", "01:1.0-0", "1.00", "1.0~rc1+b1"] {
            assert_eq!(v(s).to_string(), s);
        }
        assert_eq!(v(" \t1.0 ").to_string(), "1.0");
    }

    #[test]
    fn orders_like_dpkg() {
        let ascending = [
            "~~",
            "~~a",
            "~",
            "0",
            "0a",
            "0.~",
            "0.",
            "0.0a",
            "1.0~rc1",
            "1.0",
            "1.0-1~bpo1",
            "1.0-1",
            "1.0a",
            "1.0+b1",
            "1.1",
            "1.10",
            "2",
            "1:0",
        ];
        for pair in ascending.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn equality_is_numeric_and_hash_consistent() {
        let equal = [
            ("1.0", "0:1.0"),
            ("1.0", "1.0-0"),
            ("1.0", "1.00"),
            ("1.0", "1."),
            ("1.01", "1.1"),
            ("007", "7"),
            ("1.0-00", "1.0"),
        ];
        for (a, b) in equal {
            assert_eq!(v(a), v(b), "{a} == {b}");
            assert_eq!(hash(&v(a)), hash(&v(b)), "hash {a} == {b}");
        }
        assert_ne!(v("1.0"), v("1.0.0"));
        assert_ne!(v("a0b"), v("ab"));
    }

    #[test]
    fn unequal_versions_hash_apart() {
        // A hash that ignored a part would still be consistent with Eq,
        // but would put versions that differ only there in one bucket.
        for (a, b) in [
            ("1", "10"),
            ("1.0", "1.1"),
            ("1", "1:1"),
            ("1-1", "11"),
            ("1.0-1", "1.01"),
            ("0.1", "1"),
        ] {
            assert_ne!(v(a), v(b), "{a} != {b}");
            assert_ne!(hash(&v(a)), hash(&v(b)), "hash {a} != {b}");
        }
    }

    #[test]
    fn debug_shows_the_text() {
        assert_eq!(format!("{:?}", v("1:1.0-1")), "Version(\"1:1.0-1\")");
    }

    #[test]
    fn huge_numbers_do_not_overflow() {
        let big = "1.99999999999999999999999999999999999999";
        assert!(v(big) > v("1.18446744073709551615"));
        assert_eq!(v("1.0000000000000000000000000000001"), v("1.1"));
    }

    #[test]
    fn rejects_malformed() {
        let cases = [
            ("", "empty"),
            ("  ", "empty"),
            ("1.0 2", "embedded spaces"),
            (":1.0", "epoch is empty"),
            ("a:1.0", "not a number"),
            ("-1:1.0", "not a number"),
            ("99999999999:1", "too big"),
            ("2147483648:1", "too big"),
            ("1:", "nothing after"),
            ("1.0-", "revision is empty"),
            ("-1", "upstream version is empty"),
            ("1:-1", "upstream version is empty"),
            ("1.0_1", "invalid character '_'"),
            ("1.0-1:2", "epoch \"1.0-1\" is not a number"),
            ("1.0-a_b", "invalid character '_' in revision"),
            ("1.0\n", "invalid character '\\n'"),
            ("1.é", "invalid character 'é'"),
        ];
        for (input, reason) in cases {
            let err = input.parse::<Version>().unwrap_err().to_string();
            assert!(err.contains(reason), "{input:?}: {err}");
        }
        assert_eq!(v("2147483647:1").epoch(), 2147483647);
    }

    #[test]
    fn accepts_non_digit_start_like_dpkg() {
        assert!(v("abc") > v("1"));
        assert!(v("~1") < v("0"));
    }

    #[test]
    fn never_panics_on_garbage() {
        let alphabet = [
            "", "0", "1", "9", "a", "~", "-", ":", ".", "+", " ", "é", "\0",
        ];
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    for d in alphabet {
                        let s = format!("{a}{b}{c}{d}");
                        if let Ok(x) = s.parse::<Version>() {
                            let _ = (x.cmp(&v("1")), x.to_string(), x.revision());
                        }
                    }
                }
            }
        }
    }
}
