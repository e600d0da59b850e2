//! `kiln diff OLD NEW`: what changed between two images — the review a
//! release engineer reads before promoting one. Packages (from dpkg's
//! status database), every path whose attributes changed, and a unified
//! diff of each changed text file under `/etc`.
//!
//! Each side is a kiln manifest or a rootfs archive (plain, gzip or zstd
//! tar). A manifest gives the file list; the rootfs archive it lists is
//! read as well when it sits beside the manifest, after checking it
//! against the digest the manifest records, so that file contents can be
//! compared. Without the archive, changes are still found (the manifest
//! has every digest), but no text diff and no package list can be made
//! from that side: the report says so rather than guessing.
//!
//! File contents go to a content store in a temporary directory that lives
//! only while [`diff`] runs (and is removed on SIGINT/SIGTERM as well); the
//! report holds the finished text diffs, never the store.
//!
//! The text diffs are in the exact format of GNU `diff -u` (3 lines of
//! context, `@@ -a,b +c,d @@` headers, `\ No newline at end of file`),
//! computed with Myers' O(ND) algorithm (linear-space variant), lines
//! with no equal on the other side set aside first, and change groups slid
//! into place afterwards, all in the order GNU diff does it: where several
//! shortest diffs exist, the hunks are in practice the ones GNU prints
//! (the tests check thousands of random pairs byte for byte).

mod compare;
mod dpkg;
mod load;
mod report;
mod unified;

pub use compare::{MAX_TEXT_BYTES, attribute_changes};
pub use dpkg::{DPKG_STATUS, InstalledPackage, installed_packages, package_changes};
pub use report::{
    AttributeChange, ChangedPath, ConfigChange, ConfigChangeKind, ConfigDiff, DiffReport,
    FileChanges, ImageChange, ImageSide, Package, PackageChanges, PackageUpdate,
};
pub use unified::{CONTEXT_LINES, unified_diff};

use crate::cleanup::Registration;
use anyhow::{Context, Result};
use compare::compare;
use kiln_tree::Store;
use load::load;
use std::path::Path;

/// Compares two images, each a kiln manifest or a rootfs archive.
pub fn diff(old: &Path, new: &Path) -> Result<DiffReport> {
    let work = tempfile::Builder::new()
        .prefix("kiln-diff-")
        .tempdir()
        .context("cannot create a temporary directory for file contents")?;
    let registration = Registration::new(work.path());
    let result = (|| {
        let store = Store::open(work.path())?;
        let old = load(old, &store).with_context(|| format!("old image {}", old.display()))?;
        let new = load(new, &store).with_context(|| format!("new image {}", new.display()))?;
        compare(&old, &new, &store)
    })();
    // Contents are only needed while the text diffs are made.
    let _ = work.close();
    drop(registration);
    result
}
