//! docs/rules.md is generated from the rule catalogue; this test keeps it
//! in step. With KILN_BLESS=1 it writes the file instead of comparing.

#![allow(clippy::unwrap_used)] // a panic in a test is its failure

use std::path::PathBuf;

const REGENERATE: &str = "KILN_BLESS=1 cargo test -p kiln-policy --test rules_doc";

#[test]
fn rules_doc_is_up_to_date() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/rules.md");
    let generated = kiln_policy::audit::rules::reference_markdown();
    if std::env::var_os("KILN_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\nGenerate it with: {REGENERATE}",
            path.display()
        )
    });
    if on_disk != generated {
        let line = on_disk
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| on_disk.lines().count().min(generated.lines().count()))
            + 1;
        panic!(
            "docs/rules.md is out of date with the rule catalogue (first difference at line {line}).\n\
             Do not edit it by hand; regenerate it with:\n    {REGENERATE}\nand commit the result."
        );
    }
}
