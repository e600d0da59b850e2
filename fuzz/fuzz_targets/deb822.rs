//! Hostile deb822 control data (Packages, Release, status): iterate over
//! every paragraph and read every field.
#![no_main]

use kiln_debian::deb822;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for paragraph in deb822::paragraphs(text) {
        let paragraph = match paragraph {
            Ok(paragraph) => paragraph,
            Err(e) => {
                let _ = (e.line(), e.to_string());
                break;
            }
        };
        let _ = paragraph.line();
        for field in paragraph.fields() {
            let _ = (field.name(), field.value(), field.line());
            let _ = paragraph.get(field.name());
            for line in field.lines() {
                std::hint::black_box(line);
            }
        }
        let _ = paragraph.to_string();
    }
});
