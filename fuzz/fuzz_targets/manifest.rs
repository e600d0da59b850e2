//! A hostile manifest: `Manifest::parse` on UTF-8 input.
//!
//! Property: the canonical JSON of a parsed manifest parses back to the
//! same manifest, and is a fixed point (writing it again gives the same
//! bytes).
#![no_main]

use kiln::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(manifest) = Manifest::parse(text) else {
        return;
    };
    let canonical = manifest.to_canonical_json();
    let again = Manifest::parse(&canonical)
        .unwrap_or_else(|e| panic!("canonical JSON does not parse: {e:#}\n{canonical}"));
    assert_eq!(again, manifest, "canonical JSON reads back differently");
    assert_eq!(
        again.to_canonical_json(),
        canonical,
        "canonical JSON is not stable"
    );
});
