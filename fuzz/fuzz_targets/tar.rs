//! A hostile tar archive (plain, as after decompression): `load_tar` into a
//! store that only hashes. Every input must give a tree or an error.
#![no_main]

use kiln_tree::{Store, load_tar};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let store = Store::discard();
    match load_tar(data, "fuzz.tar", &store) {
        Ok(tree) => {
            for (path, entry) in tree.iter() {
                let _ = (path.to_string(), entry.kind.name());
            }
        }
        Err(e) => {
            let _ = format!("{e:#}");
        }
    }
});
