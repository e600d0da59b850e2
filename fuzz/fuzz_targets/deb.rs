//! A hostile .deb: read (ar, control and data archives in any compression)
//! into a store that only hashes, then placed into an empty tree as dpkg
//! unpacks. Every input must give a package or an error.
#![no_main]

use kiln_debian::deb::read_from;
use kiln_tree::{Store, Tree};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let store = Store::discard();
    match read_from(data, "fuzz 1.0", &store) {
        Ok(deb) => {
            let mut tree = Tree::new();
            match deb.place(&mut tree) {
                Ok(unpacked) => {
                    let _ = (unpacked.control.control().ok(), unpacked.paths.len());
                }
                Err(e) => {
                    let _ = format!("{e:#}");
                }
            }
        }
        Err(e) => {
            let _ = format!("{e:#}");
        }
    }
});
