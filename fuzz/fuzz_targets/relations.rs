//! A hostile relation field (Depends, Build-Depends, ...): `Relations`'s
//! `FromStr`.
#![no_main]

use kiln_debian::relation::Relations;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.parse::<Relations>() {
        Ok(relations) => {
            let _ = relations.to_string();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let _ = Relations::parse_field("Depends", text).map_err(|e| e.to_string());
});
