//! Hostile Debian versions: up to three, one a line.
//!
//! Properties (the `Ord`, `Eq` and `Hash` contracts): cmp(a, b) is the
//! reverse of cmp(b, a), cmp(a, a) is Equal, ordering is transitive, and
//! versions that compare equal hash the same.
#![no_main]

use std::cmp::Ordering;
use std::hash::{BuildHasher, RandomState};

use kiln_debian::version::Version;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let versions: Vec<Version> = text
        .splitn(3, '\n')
        .filter_map(|line| match line.parse::<Version>() {
            Ok(v) => Some(v),
            Err(e) => {
                let _ = e.to_string();
                None
            }
        })
        .collect();
    let hasher = RandomState::new();
    for a in &versions {
        let _ = (a.epoch(), a.upstream(), a.revision(), a.to_string());
        assert_eq!(a.cmp(a), Ordering::Equal, "{a:?} != itself");
        let reparsed: Version = a.as_str().parse().expect("as_str parses back");
        assert_eq!(reparsed.cmp(a), Ordering::Equal, "{a:?} reparsed differs");
        for b in &versions {
            let ab = a.cmp(b);
            assert_eq!(
                ab,
                b.cmp(a).reverse(),
                "cmp({a:?}, {b:?}) is not antisymmetric"
            );
            assert_eq!(a == b, ab == Ordering::Equal);
            if ab == Ordering::Equal {
                assert_eq!(
                    hasher.hash_one(a),
                    hasher.hash_one(b),
                    "{a:?} == {b:?}, hashes differ"
                );
            }
            for c in &versions {
                if ab != Ordering::Greater && b.cmp(c) != Ordering::Greater {
                    assert_ne!(
                        a.cmp(c),
                        Ordering::Greater,
                        "{a:?} <= {b:?} <= {c:?} but {a:?} > {c:?}"
                    );
                }
            }
        }
    }
});
