//! A hostile lockfile: `Lock::read` on any bytes.
//!
//! Property: no panic; a lock that reads is written by `to_toml` in its
//! canonical form (sorted), which reads back and writes the same bytes.
#![no_main]

use kiln_debian::lock::Lock;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("r.lock");
    std::fs::write(&path, data).expect("writing the input");
    let Ok(Some(lock)) = Lock::read(&path) else {
        return;
    };
    let text = lock
        .to_toml()
        .unwrap_or_else(|e| panic!("a lock that reads does not write: {e:#}"));
    std::fs::write(&path, &text).expect("writing the lock back");
    let again = Lock::read(&path)
        .unwrap_or_else(|e| panic!("a lock kiln wrote does not read: {e:#}"))
        .expect("the file is there");
    let written_again = again
        .to_toml()
        .unwrap_or_else(|e| panic!("a lock that reads does not write: {e:#}"));
    assert_eq!(written_again, text, "the canonical lock is not a fixed point");
});
