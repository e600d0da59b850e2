//! A hostile public key file or `-P` line: `PublicKey::parse`.
//!
//! Property: a parsed key writes back (base64 line and file) to text that
//! parses to the same key.
#![no_main]

use kiln_minisign::PublicKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = match PublicKey::parse(data) {
        Ok(key) => key,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = key.key_id().to_string();
    let line = key.to_base64();
    assert_eq!(PublicKey::parse(&line).expect("to_base64 parses"), key);
    let file = key
        .to_file_string(None)
        .expect("the default comment is valid");
    assert_eq!(PublicKey::parse(&file).expect("to_file_string parses"), key);
});
