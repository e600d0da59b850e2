//! A hostile recipe: `recipe::load` on any bytes, as a file in an empty
//! folder (relative paths it names lead nowhere).
//!
//! Property: no panic; an error names the recipe file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("r.toml");
    std::fs::write(&path, data).expect("writing the input");
    if let Err(e) = kiln::recipe::load(&path) {
        let message = e.to_string();
        assert!(
            message.contains("r.toml"),
            "an error that does not name the recipe: {message}"
        );
    }
});
