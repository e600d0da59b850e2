//! Runs the real `kiln build` on malformed recipes and checks what the user
//! sees: exit code 3, the exact `FILE:LINE:COL: MESSAGE` line, a snippet
//! showing and underlining the offending source, and an output directory
//! with nothing in it. Also builds valid recipes (including the complete
//! example of docs/recipe.md) to prove the harness can tell the difference.

use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A valid `[image]` table, 3 lines long.
const IMAGE: &str = "[image]\nname = \"node\"\nversion = \"1.0.0\"\n";

/// A digest that is well formed (the file it pins does not matter when
/// validation fails first).
const SOME_SHA256: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn write(dir: &Path, relative: &str, text: &str) -> PathBuf {
    let path = dir.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, text).unwrap();
    path
}

/// `kiln build RECIPE -o out`, run from `dir` so file names print relative.
fn kiln_build(dir: &Path, recipe: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["build", recipe, "-o", "out"])
        .current_dir(dir)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("cannot run kiln")
}

/// Every path below `dir` (files and directories), or none if it does
/// not exist.
fn entries_below(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(read) = fs::read_dir(dir) else {
        return found;
    };
    for entry in read {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(entries_below(&path));
        }
        found.push(path);
    }
    found
}

/// Asserts that building `recipe` (relative to `dir`) fails as an invalid
/// recipe whose first stderr line is `error: {expected}`, where `expected`
/// is `FILE:LINE:COL: MESSAGE`, that the snippet shows line LINE of FILE
/// with `underlined` (the exact source text, or "" for a one-caret mark)
/// underlined from COL, and that nothing was left in the output directory.
fn assert_invalid(dir: &Path, recipe: &str, expected: &str, underlined: &str) {
    check_invalid(dir, recipe, expected, underlined, false);
}

/// As [`assert_invalid`], for errors found while assembling the image:
/// kiln's progress lines (`kiln: ...`) may come before the error.
fn assert_invalid_after_progress(dir: &Path, recipe: &str, expected: &str, underlined: &str) {
    check_invalid(dir, recipe, expected, underlined, true);
}

fn check_invalid(dir: &Path, recipe: &str, expected: &str, underlined: &str, progress: bool) {
    let output = kiln_build(dir, recipe);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(3),
        "expected exit code 3 (invalid recipe) for {recipe}; stderr:\n{stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "a failed build printed on stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let lines: Vec<&str> = stderr.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in stderr:\n{stderr}"));
    if progress {
        for line in &lines[..at] {
            assert!(
                line.starts_with("kiln: ") && !line.starts_with("kiln: warning"),
                "unexpected line before the error: {line:?}\n{stderr}"
            );
        }
    } else {
        assert_eq!(
            at, 0,
            "the error is not the first line of stderr:\n{stderr}"
        );
    }
    assert_eq!(lines[at], format!("error: {expected}"), "stderr:\n{stderr}");

    let mut parts = expected.splitn(4, ':');
    let (file, line, column) = (
        parts.next().unwrap(),
        parts.next().unwrap().parse::<usize>().expect("LINE"),
        parts.next().unwrap().parse::<usize>().expect("COL"),
    );
    let text = fs::read_to_string(dir.join(file)).expect("the file the error names");
    let source = text
        .lines()
        .nth(line - 1)
        .unwrap_or_else(|| panic!("{file} has no line {line}"));
    let marked: String = source.chars().skip(column - 1).collect();
    assert!(
        marked.starts_with(underlined),
        "{file}:{line}:{column} is {marked:?}, not {underlined:?}"
    );
    let gutter = " ".repeat(line.to_string().len());
    let snippet = [
        format!("{gutter} |"),
        format!("{line} | {source}"),
        format!(
            "{gutter} | {}{}",
            " ".repeat(column - 1),
            "^".repeat(underlined.chars().count().max(1))
        ),
    ];
    assert_eq!(
        &lines[at + 1..],
        &snippet[..],
        "the snippet should show and underline the offending text; stderr:\n{stderr}"
    );

    let left = entries_below(&dir.join("out"));
    assert!(
        left.is_empty(),
        "a failed build left {left:?} in the output directory"
    );
}

/// A recipe `bad.toml` with `text` in a fresh folder, checked.
fn invalid(text: &str, expected: &str, underlined: &str) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bad.toml", text);
    assert_invalid(dir.path(), "bad.toml", expected, underlined);
}

/// As [`invalid`], for an error found while assembling the image.
fn invalid_after_progress(text: &str, expected: &str, underlined: &str) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bad.toml", text);
    assert_invalid_after_progress(dir.path(), "bad.toml", expected, underlined);
}

fn sha256_hex(path: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(path).unwrap()))
}

/// Packs `rootfs` (a host folder) into the plain tarball `tarball` with
/// GNU tar, root-owned, and returns its sha256.
fn make_tarball(rootfs: &Path, tarball: &Path) -> String {
    let status = Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "--sort=name"])
        .arg("-cf")
        .arg(tarball)
        .arg("-C")
        .arg(rootfs)
        .arg(".")
        .status()
        .expect("cannot run GNU tar");
    assert!(status.success(), "tar failed");
    sha256_hex(tarball)
}

/// A small base tarball `base.tar` in `dir` with accounts root, k3s
/// (999) and nobody (65534); returns its sha256.
fn accounts_base(dir: &Path) -> String {
    let rootfs = tempfile::tempdir().unwrap();
    write(
        rootfs.path(),
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\n\
         k3s:x:999:999::/var/lib/rancher:/usr/sbin/nologin\n\
         nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    );
    write(
        rootfs.path(),
        "etc/group",
        "root:x:0:\nk3s:x:999:\nnogroup:x:65534:\n",
    );
    make_tarball(rootfs.path(), &dir.join("base.tar"))
}

// ----- the top level and [image] -----

#[test]
fn unknown_top_level_table_gets_a_suggestion() {
    invalid(
        &format!("{IMAGE}\n[[files]]\ndest = \"/etc/motd\"\ncontent = \"hi\"\n"),
        "bad.toml:5:3: unknown field \"files\", did you mean \"file\"?",
        "files",
    );
}

#[test]
fn unknown_image_key_gets_a_suggestion() {
    invalid(
        "[image]\nname = \"node\"\nverison = \"1.0.0\"\n",
        "bad.toml:3:1: unknown field \"verison\", did you mean \"version\"?",
        "verison",
    );
}

#[test]
fn unknown_key_without_a_close_match_lists_the_valid_fields() {
    invalid(
        &format!("{IMAGE}flavour = \"spicy\"\n"),
        "bad.toml:4:1: unknown field \"flavour\"; valid fields here: \
         name, version, arch, description, supplier, source_date_epoch",
        "flavour",
    );
}

#[test]
fn unknown_key_in_an_overlay_rule_gets_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("overlay")).unwrap();
    write(
        dir.path(),
        "bad.toml",
        &format!(
            "{IMAGE}\n[[overlay]]\nsource = \"overlay\"\n\n\
             [[overlay.rule]]\npath = \"/etc/**\"\nmod = \"0600\"\n"
        ),
    );
    assert_invalid(
        dir.path(),
        "bad.toml",
        "bad.toml:10:1: unknown field \"mod\", did you mean \"mode\"?",
        "mod",
    );
}

#[test]
fn toml_syntax_errors_point_at_the_text() {
    // Unclear (reported): serde's `"` is rewritten into `"""`.
    invalid(
        "[image]\nname = \"node\"\nversion = \"1.0.0\n",
        "bad.toml:3:17: invalid basic string, expected '\"'",
        "",
    );
    invalid(
        "[image]\nname = k3s-agent\nversion = \"1.0.0\"\n",
        "bad.toml:2:8: string values must be quoted, expected literal string",
        "k3s-agent",
    );
}

#[test]
fn a_duplicate_key_is_located() {
    // Unclear (reported): the message does not say which key.
    invalid(
        &format!("{IMAGE}version = \"2.0.0\"\n"),
        "bad.toml:4:1: duplicate key",
        "version",
    );
}

#[test]
fn wrong_type_string_expected_integer_given() {
    // Unclear (reported): the number is quoted and the field not named.
    invalid(
        "[image]\nname = 5\nversion = \"1.0.0\"\n",
        "bad.toml:2:8: invalid type: integer \"5\", expected a string",
        "5",
    );
}

#[test]
fn wrong_type_integer_expected_string_given() {
    // Unclear (reported): "i64" is a Rust type name.
    invalid(
        &format!("{IMAGE}source_date_epoch = \"1700000000\"\n"),
        "bad.toml:4:21: invalid type: string \"1700000000\", expected an integer",
        "\"1700000000\"",
    );
}

#[test]
fn a_single_bracket_table_for_an_array_of_tables() {
    // Unclear (reported): does not say to write [[remove]].
    invalid(
        &format!("{IMAGE}\n[remove]\npaths = [\"/usr/share/doc\"]\n"),
        "bad.toml:5:1: invalid type: map, expected a sequence: this is an array of tables; \
         write [[name]] instead of [name]",
        "[remove]",
    );
}

#[test]
fn missing_image_name() {
    invalid(
        "[image]\nversion = \"1.0.0\"\n",
        "bad.toml:1:1: [image] name is missing; add name = \"k3s-agent\" under [image]",
        "[image]",
    );
}

#[test]
fn missing_image_version() {
    invalid(
        "[image]\nname = \"node\"\n",
        "bad.toml:1:1: [image] version is missing; add version = \"1.0.0\" under [image]",
        "[image]",
    );
}

#[test]
fn invalid_image_names() {
    for (name, column_text) in [("k3s agent", "\"k3s agent\""), ("K3s", "\"K3s\"")] {
        invalid(
            &format!("[image]\nname = \"{name}\"\nversion = \"1.0.0\"\n"),
            &format!(
                "bad.toml:2:8: image name \"{name}\" is not valid: use 1 to 64 of a-z, 0-9, \
                 '.', '_', '-', starting with a letter or digit (it becomes part of file names)"
            ),
            column_text,
        );
    }
}

#[test]
fn invalid_version() {
    invalid(
        "[image]\nname = \"node\"\nversion = \"1.0 beta\"\n",
        "bad.toml:3:11: version \"1.0 beta\" is not valid: use letters, digits and . + ~ _ -, \
         starting with a letter or digit, like \"1.2.0\"",
        "\"1.0 beta\"",
    );
}

#[test]
fn unknown_arch_gets_a_suggestion() {
    invalid(
        &format!("{IMAGE}arch = \"amd46\"\n"),
        "bad.toml:4:8: unknown arch \"amd46\", did you mean \"amd64\"?",
        "\"amd46\"",
    );
}

#[test]
fn unknown_arch_without_a_close_match_lists_them() {
    invalid(
        &format!("{IMAGE}arch = \"sparc\"\n"),
        "bad.toml:4:8: unknown arch \"sparc\"; known: amd64, arm64, armel, armhf, i386, \
         mips64el, ppc64el, riscv64, s390x",
        "\"sparc\"",
    );
}

#[test]
fn negative_source_date_epoch() {
    invalid(
        &format!("{IMAGE}source_date_epoch = -1\n"),
        "bad.toml:4:21: source_date_epoch must be a non-negative number of seconds since 1970",
        "-1",
    );
}

// ----- [base] -----

#[test]
fn bad_sha256_in_base() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "base.tar", "not checked");
    write(
        dir.path(),
        "bad.toml",
        &format!("{IMAGE}\n[base]\npath = \"base.tar\"\nsha256 = \"abc123\"\n"),
    );
    assert_invalid(
        dir.path(),
        "bad.toml",
        "bad.toml:7:10: \"abc123\" is not a sha256 digest: expected 64 hexadecimal digits; \
         compute it with: sha256sum FILE",
        "\"abc123\"",
    );
}

#[test]
fn missing_base_tarball() {
    invalid(
        &format!("{IMAGE}\n[base]\npath = \"images/base.tar.zst\"\nsha256 = \"{SOME_SHA256}\"\n"),
        "bad.toml:6:8: base tarball \"images/base.tar.zst\" is not a file \
         (paths are relative to the recipe's folder)",
        "\"images/base.tar.zst\"",
    );
}

#[test]
fn base_tarball_is_relative_to_the_recipe_not_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    // Beside the current directory, not beside the recipe: not found.
    write(dir.path(), "base.tar", "");
    write(
        dir.path(),
        "recipes/bad.toml",
        &format!("{IMAGE}[base]\npath = \"base.tar\"\nsha256 = \"{SOME_SHA256}\"\n"),
    );
    assert_invalid(
        dir.path(),
        "recipes/bad.toml",
        "recipes/bad.toml:5:8: base tarball \"base.tar\" is not a file \
         (paths are relative to the recipe's folder)",
        "\"base.tar\"",
    );
}

#[test]
fn missing_base_key() {
    invalid(
        &format!("{IMAGE}\n[base]\npath = \"base.tar\"\n"),
        "bad.toml:5:1: missing field \"sha256\" in this table",
        "[base]",
    );
}

// ----- modes -----

#[test]
fn mode_as_a_bare_integer() {
    invalid(
        &format!("{IMAGE}\n[[file]]\ndest = \"/etc/motd\"\ncontent = \"hi\"\nmode = 644\n"),
        "bad.toml:8:8: write the mode as a quoted octal string, like \"0644\" or \"4755\" \
         (TOML reads a bare number as decimal)",
        "644",
    );
}

#[test]
fn mode_with_a_leading_zero_is_a_toml_error() {
    invalid(
        &format!("{IMAGE}\n[[file]]\ndest = \"/etc/motd\"\ncontent = \"hi\"\nmode = 0644\n"),
        "bad.toml:8:8: unexpected leading zero, expected nothing: quote it if it is a mode, like \"0644\"",
        "0",
    );
}

#[test]
fn mode_with_a_non_octal_digit() {
    invalid(
        &format!("{IMAGE}\n[[file]]\ndest = \"/etc/motd\"\ncontent = \"hi\"\nmode = \"0689\"\n"),
        "bad.toml:8:8: invalid mode \"0689\": expected up to four octal digits, \
         like \"0644\" or \"4755\"",
        "\"0689\"",
    );
}

#[test]
fn overlay_dir_mode_as_a_bare_integer() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("overlay")).unwrap();
    write(
        dir.path(),
        "bad.toml",
        &format!("{IMAGE}\n[[overlay]]\nsource = \"overlay\"\ndir_mode = 755\n"),
    );
    assert_invalid(
        dir.path(),
        "bad.toml",
        "bad.toml:7:12: write the mode as a quoted octal string, like \"0644\" or \"4755\" \
         (TOML reads a bare number as decimal)",
        "755",
    );
}

// ----- [[file]], [[symlink]] and image paths -----

#[test]
fn file_with_both_content_and_source() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "motd", "hello\n");
    write(
        dir.path(),
        "bad.toml",
        &format!("{IMAGE}\n[[file]]\ndest = \"/etc/motd\"\ncontent = \"hi\"\nsource = \"motd\"\n"),
    );
    assert_invalid(
        dir.path(),
        "bad.toml",
        "bad.toml:7:11: give either content = \"...\" or source = \"path\", not both",
        "\"hi\"",
    );
}

#[test]
fn file_with_neither_content_nor_source() {
    invalid(
        &format!("{IMAGE}\n[[file]]\ndest = \"/etc/motd\"\nmode = \"0644\"\n"),
        "bad.toml:5:1: a [[file]] needs its content: add content = \"...\" or source = \"path\"",
        "[[file]]",
    );
}

#[test]
fn file_source_that_does_not_exist() {
    invalid(
        &format!("{IMAGE}\n[[file]]\ndest = \"/etc/motd\"\nsource = \"files/motd\"\n"),
        "bad.toml:7:10: source \"files/motd\" is not a file \
         (paths are relative to the recipe's folder)",
        "\"files/motd\"",
    );
}

#[test]
fn file_without_dest() {
    invalid(
        &format!("{IMAGE}\n[[file]]\ncontent = \"hi\"\n"),
        "bad.toml:5:1: missing field \"dest\" in this table",
        "[[file]]",
    );
}

#[test]
fn dest_that_is_not_absolute() {
    invalid(
        &format!("{IMAGE}\n[[file]]\ndest = \"./etc/motd\"\ncontent = \"hi\"\n"),
        "bad.toml:6:8: dest \"./etc/motd\" must be an absolute path in the image, \
         like \"/etc/motd\"",
        "\"./etc/motd\"",
    );
}

#[test]
fn symlink_path_that_is_not_absolute() {
    invalid(
        &format!("{IMAGE}\n[[symlink]]\npath = \"bin\"\ntarget = \"usr/bin\"\n"),
        "bad.toml:6:8: path \"bin\" must be an absolute path in the image, like \"/bin\"",
        "\"bin\"",
    );
}

#[test]
fn symlink_with_an_empty_target() {
    invalid(
        &format!("{IMAGE}\n[[symlink]]\npath = \"/bin\"\ntarget = \"\"\n"),
        "bad.toml:7:10: target must be a non-empty path",
        "\"\"",
    );
}

#[test]
fn dest_containing_dot_dot() {
    invalid(
        &format!("{IMAGE}\n[[file]]\ndest = \"/etc/../root/.profile\"\ncontent = \"hi\"\n"),
        "bad.toml:6:8: dest \"/etc/../root/.profile\": path contains '..', \
         which could escape the image root",
        "\"/etc/../root/.profile\"",
    );
}

#[test]
fn remove_pattern_containing_dot_dot() {
    invalid(
        &format!("{IMAGE}\n[[remove]]\npaths = [\"/usr/share/../../etc\"]\n"),
        "bad.toml:6:10: \"/usr/share/../../etc\" contains '..'; name the path directly",
        "\"/usr/share/../../etc\"",
    );
}

#[test]
fn dest_over_the_image_root() {
    invalid(
        &format!("{IMAGE}\n[[file]]\ndest = \"/\"\ncontent = \"hi\"\n"),
        "bad.toml:6:8: dest \"/\" is the image root; name a path below it",
        "\"/\"",
    );
}

// ----- [[remove]] -----

#[test]
fn remove_of_the_image_root() {
    invalid(
        &format!("{IMAGE}\n[[remove]]\npaths = [\"/usr/share/doc\", \"/\"]\n"),
        "bad.toml:6:28: refusing to remove the image root \"/\"",
        "\"/\"",
    );
}

#[test]
fn remove_with_no_paths() {
    invalid(
        &format!("{IMAGE}\n[[remove]]\npaths = []\nreason = \"nothing\"\n"),
        "bad.toml:6:9: paths is empty; list the paths or globs to remove",
        "[]",
    );
}

#[test]
fn remove_of_a_relative_path() {
    invalid(
        &format!("{IMAGE}\n[[remove]]\npaths = [\"usr/share/doc\"]\n"),
        "bad.toml:6:10: \"usr/share/doc\" must be an absolute image path or glob, \
         like \"/usr/share/doc\"",
        "\"usr/share/doc\"",
    );
}

#[test]
fn invalid_glob() {
    invalid(
        &format!("{IMAGE}\n[[remove]]\npaths = [\"/usr/share/locale/[!en*\"]\n"),
        "bad.toml:6:10: invalid glob \"/usr/share/locale/[!en*\": \
         unclosed character class; missing ']'",
        "\"/usr/share/locale/[!en*\"",
    );
}

// ----- [[overlay]] -----

#[test]
fn overlay_source_that_is_a_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "overlay", "a file, not a folder\n");
    write(
        dir.path(),
        "bad.toml",
        &format!("{IMAGE}\n[[overlay]]\nsource = \"overlay\"\n"),
    );
    assert_invalid(
        dir.path(),
        "bad.toml",
        "bad.toml:6:10: overlay source \"overlay\" is not a directory \
         (paths are relative to the recipe's folder)",
        "\"overlay\"",
    );
}

#[test]
fn overlay_rule_with_a_relative_path() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("overlay")).unwrap();
    write(
        dir.path(),
        "bad.toml",
        &format!(
            "{IMAGE}\n[[overlay]]\nsource = \"overlay\"\n\n\
             [[overlay.rule]]\npath = \"etc/ssh/*_key\"\nmode = \"0600\"\n"
        ),
    );
    assert_invalid(
        dir.path(),
        "bad.toml",
        "bad.toml:9:8: \"etc/ssh/*_key\" must be an absolute image path or glob, \
         like \"/etc/ssh/*_key\"",
        "\"etc/ssh/*_key\"",
    );
}

#[test]
fn owner_that_is_not_a_valid_name() {
    invalid(
        &format!(
            "{IMAGE}\n[[file]]\ndest = \"/etc/motd\"\ncontent = \"hi\"\nowner = \"k3s agent\"\n"
        ),
        "bad.toml:8:9: owner \"k3s agent\" is not a valid user or group name",
        "\"k3s agent\"",
    );
}

#[test]
fn group_id_out_of_range() {
    invalid(
        &format!("{IMAGE}\n[[file]]\ndest = \"/etc/motd\"\ncontent = \"hi\"\ngroup = -1\n"),
        "bad.toml:8:9: group id -1 is out of range: ids are 0 to 4294967295",
        "-1",
    );
}

// ----- extends -----

#[test]
fn extends_cycle_between_two_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "common.toml", "extends = \"node.toml\"\n");
    write(
        dir.path(),
        "node.toml",
        &format!("extends = \"common.toml\"\n{IMAGE}"),
    );
    assert_invalid(
        dir.path(),
        "node.toml",
        "common.toml:1:11: extends cycle: node.toml -> common.toml -> node.toml; \
         remove one of these extends",
        "\"node.toml\"",
    );
}

#[test]
fn extends_of_a_missing_file_is_located_at_the_extends_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "node.toml",
        &format!("# A node.\n\nextends = \"common/base.toml\"\n{IMAGE}"),
    );
    // Not where the recipe says: relative to the current directory.
    write(dir.path(), "base.toml", IMAGE);
    assert_invalid(
        dir.path(),
        "node.toml",
        "node.toml:3:11: cannot read extended recipe common/base.toml: \
         No such file or directory (os error 2)",
        "\"common/base.toml\"",
    );
}

#[test]
fn errors_in_an_extended_file_name_that_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "common/base.toml",
        "[image]\nname = \"node\"\nversion = \"1.0.0\"\narch = \"arm46\"\n",
    );
    write(
        dir.path(),
        "node.toml",
        "extends = \"common/base.toml\"\n[image]\nname = \"worker\"\n",
    );
    assert_invalid(
        dir.path(),
        "node.toml",
        "common/base.toml:4:8: unknown arch \"arm46\", did you mean \"arm64\"?",
        "\"arm46\"",
    );
}

// ----- owners looked up in the image -----

#[test]
fn owner_unknown_to_the_image_suggests_a_close_name() {
    let dir = tempfile::tempdir().unwrap();
    let sha = accounts_base(dir.path());
    write(
        dir.path(),
        "bad.toml",
        &format!(
            "{IMAGE}\n[base]\npath = \"base.tar\"\nsha256 = \"{sha}\"\n\n\
             [[file]]\ndest = \"/etc/rancher/k3s/config.yaml\"\ncontent = \"\"\nowner = \"k3ss\"\n"
        ),
    );
    assert_invalid_after_progress(
        dir.path(),
        "bad.toml",
        "bad.toml:12:9: user \"k3ss\" does not exist in the image; did you mean \"k3s\"?",
        "\"k3ss\"",
    );
}

#[test]
fn group_unknown_to_the_image_suggests_a_close_name() {
    let dir = tempfile::tempdir().unwrap();
    let sha = accounts_base(dir.path());
    fs::create_dir(dir.path().join("overlay")).unwrap();
    write(
        dir.path(),
        "bad.toml",
        &format!(
            "{IMAGE}\n[base]\npath = \"base.tar\"\nsha256 = \"{sha}\"\n\n\
             [[overlay]]\nsource = \"overlay\"\nowner = \"nobody\"\ngroup = \"nogrup\"\n"
        ),
    );
    assert_invalid_after_progress(
        dir.path(),
        "bad.toml",
        "bad.toml:12:9: group \"nogrup\" does not exist in the image; did you mean \"nogroup\"?",
        "\"nogrup\"",
    );
}

#[test]
fn owner_unknown_to_the_image_without_a_close_name_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let sha = accounts_base(dir.path());
    write(
        dir.path(),
        "bad.toml",
        &format!(
            "{IMAGE}\n[base]\npath = \"base.tar\"\nsha256 = \"{sha}\"\n\n\
             [[file]]\ndest = \"/etc/motd\"\ncontent = \"\"\nowner = \"postgres\"\n"
        ),
    );
    assert_invalid_after_progress(
        dir.path(),
        "bad.toml",
        "bad.toml:12:9: user \"postgres\" does not exist in the image; \
         the image's /etc/passwd has: k3s, nobody, root",
        "\"postgres\"",
    );
}

#[test]
fn owner_name_without_a_base_has_nothing_to_look_up() {
    invalid_after_progress(
        &format!("{IMAGE}\n[[file]]\ndest = \"/etc/motd\"\ncontent = \"\"\nowner = \"k3s\"\n"),
        "bad.toml:8:9: user \"k3s\" does not exist in the image; \
         the image has no /etc/passwd; use a numeric id",
        "\"k3s\"",
    );
}

// ----- valid recipes: the harness can tell success from failure -----

fn manifest(dir: &Path, stem: &str) -> serde_json::Value {
    let text = fs::read_to_string(dir.join("out").join(format!("{stem}.manifest.json")))
        .expect("the manifest");
    serde_json::from_str(&text).unwrap()
}

/// The manifest's record of `path`, if the image has it.
fn entry<'a>(manifest: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
}

/// (type, mode, uid, gid) of `path` in the image.
fn meta(manifest: &serde_json::Value, path: &str) -> (String, String, u64, u64) {
    let e = entry(manifest, path).unwrap_or_else(|| panic!("{path} is not in the image"));
    (
        e["type"].as_str().unwrap().to_owned(),
        e["mode"].as_str().unwrap().to_owned(),
        e["uid"].as_u64().unwrap(),
        e["gid"].as_u64().unwrap(),
    )
}

fn assert_builds(dir: &Path, recipe: &str) -> Output {
    let output = kiln_build(dir, recipe);
    assert_eq!(
        output.status.code(),
        Some(0),
        "a valid recipe failed; stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn a_valid_recipe_builds() {
    let dir = tempfile::tempdir().unwrap();
    let sha = accounts_base(dir.path());
    write(
        dir.path(),
        "node.toml",
        &format!(
            "{IMAGE}\n[base]\npath = \"base.tar\"\nsha256 = \"{sha}\"\n\n\
             [[file]]\ndest = \"/etc/motd\"\ncontent = \"hi\\n\"\nmode = \"0640\"\n\
             owner = \"k3s\"\ngroup = \"nogroup\"\n\n[audit]\nfail_on = \"none\"\n"
        ),
    );
    let output = assert_builds(dir.path(), "node.toml");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout,
        "out/node-1.0.0.rootfs.tar.zst\nout/node-1.0.0.manifest.json\n"
    );
    let mut names: Vec<String> = fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["node-1.0.0.manifest.json", "node-1.0.0.rootfs.tar.zst"]
    );
    let m = manifest(dir.path(), "node-1.0.0");
    assert_eq!(
        meta(&m, "/etc/motd"),
        ("file".into(), "0640".into(), 999, 65534)
    );
}

#[test]
fn extends_overrides_image_keys_and_appends_lists() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "common/motd", "from common\n");
    write(
        dir.path(),
        "common/base.toml",
        "[image]\nname = \"base\"\nversion = \"1.0.0\"\nsource_date_epoch = 1\n\n\
         [[file]]\ndest = \"/etc/motd\"\nsource = \"motd\"\n\n\
         [[file]]\ndest = \"/etc/issue\"\nsource = \"motd\"\n\n\
         [audit]\nfail_on = \"none\"\n",
    );
    write(
        dir.path(),
        "node.toml",
        "extends = \"common/base.toml\"\n\n[image]\nname = \"node\"\n\n\
         [[file]]\ndest = \"/etc/motd\"\ncontent = \"from node\\n\"\n",
    );
    assert_builds(dir.path(), "node.toml");
    let m = manifest(dir.path(), "node-1.0.0");
    assert_eq!(m["image"]["name"], "node");
    assert_eq!(m["source_date_epoch"], 1);
    let motd = entry(&m, "/etc/motd").unwrap();
    assert_eq!(
        motd["sha256"].as_str().unwrap(),
        hex::encode(Sha256::digest(b"from node\n")),
        "the derived file's [[file]] applies last"
    );
    let issue = entry(&m, "/etc/issue").unwrap();
    assert_eq!(
        issue["sha256"].as_str().unwrap(),
        hex::encode(Sha256::digest(b"from common\n")),
        "the extended file's source is relative to its own folder"
    );
    let files: Vec<&str> = m["recipe"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["node.toml", "common/base.toml"]);
}

/// The last ```toml block of docs/recipe.md: its complete example.
fn documented_example() -> String {
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/recipe.md"))
        .expect("docs/recipe.md");
    let start = doc
        .rfind("```toml\n")
        .expect("a toml block in docs/recipe.md")
        + 8;
    let end = start + doc[start..].find("\n```").expect("the end of the block");
    doc[start..=end].to_owned()
}

#[test]
fn the_documented_example_builds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // The base: accounts with an ops user, and what the example removes.
    let rootfs = tempfile::tempdir().unwrap();
    let r = rootfs.path();
    write(
        r,
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nops:x:1000:1000::/home/ops:/bin/sh\n",
    );
    write(r, "etc/group", "root:x:0:\nsudo:x:27:ops\nops:x:1000:\n");
    fs::create_dir_all(r.join("home")).unwrap();
    write(r, "usr/share/doc/bash/copyright", "GPL\n");
    write(r, "usr/share/man/man1/bash.1", ".TH BASH\n");
    write(r, "usr/share/zoneinfo/UTC", "TZif\n");
    write(r, "var/cache/apt/pkgcache.bin", "cache\n");
    write(r, "var/cache/apt/archives/lock", "");
    fs::create_dir_all(r.join("tmp")).unwrap();
    fs::set_permissions(r.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::create_dir_all(d.join("base")).unwrap();
    let sha = make_tarball(r, &d.join("base/bookworm-amd64.tar"));

    write(d, "overlay/etc/rancher/k3s/config.yaml", "token: secret\n");
    write(d, "ops-home/.ssh/authorized_keys", "ssh-ed25519 AAAA ops\n");
    write(
        d,
        "units/k3s-agent.service",
        "[Unit]\nDescription=K3s agent\n",
    );

    let example = documented_example();
    let pins: Vec<&str> = example
        .lines()
        .filter(|l| l.starts_with("sha256 = "))
        .collect();
    assert_eq!(pins.len(), 1, "the example pins one base tarball");
    let recipe = example.replace(pins[0], &format!("sha256 = \"{sha}\""));
    write(d, "k3s-agent.toml", &recipe);

    let output = assert_builds(d, "k3s-agent.toml");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");

    let m = manifest(d, "k3s-agent-1.30.2-1");
    assert_eq!(m["source_date_epoch"], 1_700_000_000);
    assert_eq!(m["image"]["arch"], "amd64");
    let (dir_, file) = ("dir".to_owned(), "file".to_owned());
    // [[remove]]
    assert!(entry(&m, "/usr/share/doc").is_some());
    assert!(entry(&m, "/usr/share/doc/bash").is_none());
    assert!(entry(&m, "/usr/share/man").is_none());
    assert!(entry(&m, "/var/cache/apt/pkgcache.bin").is_none());
    assert!(entry(&m, "/var/cache/apt/archives/lock").is_some());
    // [[overlay]] with its rules
    assert_eq!(
        meta(&m, "/etc/rancher/k3s/config.yaml"),
        (file.clone(), "0600".into(), 0, 0)
    );
    assert_eq!(
        meta(&m, "/etc/rancher/k3s"),
        (dir_.clone(), "0755".into(), 0, 0)
    );
    assert_eq!(
        meta(&m, "/home/ops"),
        (dir_.clone(), "0750".into(), 1000, 1000)
    );
    assert_eq!(
        meta(&m, "/home"),
        (dir_.clone(), "0755".into(), 0, 0),
        "an existing directory keeps its metadata"
    );
    assert_eq!(
        meta(&m, "/home/ops/.ssh"),
        (dir_.clone(), "0700".into(), 1000, 1000)
    );
    assert_eq!(
        meta(&m, "/home/ops/.ssh/authorized_keys"),
        (file.clone(), "0600".into(), 1000, 1000)
    );
    assert_eq!(meta(&m, "/tmp"), (dir_.clone(), "1777".into(), 0, 0));
    // [[file]] and [[symlink]]
    assert_eq!(meta(&m, "/etc/motd"), (file.clone(), "0644".into(), 0, 0));
    assert_eq!(
        meta(&m, "/etc/systemd/system/k3s-agent.service"),
        (file.clone(), "0644".into(), 0, 0)
    );
    assert_eq!(
        meta(&m, "/etc/sudoers.d/ops"),
        (file.clone(), "0440".into(), 0, 0)
    );
    let localtime = entry(&m, "/etc/localtime").unwrap();
    assert_eq!(localtime["type"], "symlink");
    assert_eq!(localtime["target"], "/usr/share/zoneinfo/UTC");
}

#[test]
fn a_recipe_path_that_is_not_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("recipes")).unwrap();
    for path in ["recipes", "/dev/null"] {
        let out = kiln_build(dir.path(), path);
        assert_eq!(out.status.code(), Some(3), "{path}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.trim_end(),
            format!("error: {path}: is not a regular file; give the recipe's .toml file"),
            "no panic, a clear error"
        );
    }
}

#[test]
fn a_huge_value_is_quoted_short_and_its_line_shown_around_the_column() {
    let dir = tempfile::tempdir().unwrap();
    // 900 KB, under the recipe limit: validated, then reported
    let name = "a".repeat(900_000);
    write(
        dir.path(),
        "bad.toml",
        &format!("[image]\nname = \"{name}\"\nversion = \"1.0.0\"\n"),
    );
    let output = kiln_build(dir.path(), "bad.toml");
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let a60 = "a".repeat(60);
    assert_eq!(
        stderr,
        format!(
            "error: bad.toml:2:8: image name \"{a60}…\" is not valid: use 1 to 64 of a-z, 0-9, '.', '_', '-', \
             starting with a letter or digit (it becomes part of file names)\n  |\n\
             2 | name = \"{}…\n  |        {}\n",
            "a".repeat(152),
            "^".repeat(153)
        )
    );
    assert!(stderr.len() < 1024, "{} bytes on stderr", stderr.len());

    // a value the TOML parser rejects, far along a long line
    let digits = "9".repeat(900_000);
    write(
        dir.path(),
        "bad.toml",
        &format!("{IMAGE}source_date_epoch = \"{digits}\"\n"),
    );
    let output = kiln_build(dir.path(), "bad.toml");
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.lines().next().unwrap(),
        format!(
            "error: bad.toml:4:21: invalid type: string \"{}…\", expected an integer",
            "9".repeat(60)
        )
    );
    assert!(stderr.len() < 1024, "{} bytes on stderr", stderr.len());
}

#[test]
fn an_oversized_recipe_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    // 2 GiB (sparse): refused by its size, with memory to spare
    std::fs::File::create(dir.path().join("big.toml"))
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.args(["build", "big.toml", "-o", "out"])
        .current_dir(dir.path());
    let (output, rss) = crate::exits::with_max_rss(&cmd);
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: big.toml: is larger than the 1 MiB a recipe may be\n"
    );
    assert!(rss < 64 << 10, "kiln peaked at {rss} KiB");
    assert!(entries_below(&dir.path().join("out")).is_empty());

    // one byte over the limit, reached through extends
    write(dir.path(), "base.toml", &"#".repeat((1 << 20) + 1));
    write(
        dir.path(),
        "node.toml",
        &format!("extends = \"base.toml\"\n{IMAGE}"),
    );
    assert_invalid(
        dir.path(),
        "node.toml",
        "node.toml:1:11: extended recipe base.toml is larger than the 1 MiB a recipe may be",
        "\"base.toml\"",
    );
    // exactly at the limit is fine (a comment, then the real recipe)
    write(
        dir.path(),
        "base.toml",
        &format!("{IMAGE}{}\n", "#".repeat((1 << 20) - IMAGE.len() - 1)),
    );
    assert_eq!(
        fs::metadata(dir.path().join("base.toml")).unwrap().len(),
        1 << 20
    );
    write(
        dir.path(),
        "node.toml",
        "extends = \"base.toml\"\n[audit]\nfail_on = \"none\"\n",
    );
    let output = kiln_build(dir.path(), "node.toml");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn boot_section_errors_point_at_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "format.toml",
        &format!("{IMAGE}[boot]\nformats = [\"rootfs\", \"raww\"]\n"),
    );
    assert_invalid(
        d,
        "format.toml",
        "format.toml:5:22: unknown format \"raww\" (did you mean \"raw\"?); formats are rootfs, raw, qcow2, vhd, gce, pxe",
        "\"raww\"",
    );
    write(d, "empty.toml", &format!("{IMAGE}[boot]\nformats = []\n"));
    assert_invalid(
        d,
        "empty.toml",
        "empty.toml:5:11: formats is empty; list at least one of \"rootfs\", \"raw\"",
        "[]",
    );
    write(
        d,
        "spaces.toml",
        &format!("{IMAGE}[boot]\ncmdline = [\"console=ttyS0 quiet\"]\n"),
    );
    assert_invalid(
        d,
        "spaces.toml",
        "spaces.toml:5:12: a kernel argument is one word without spaces; write each as its own string: cmdline = [\"console=ttyS0\", \"quiet\"]",
        "\"console=ttyS0 quiet\"",
    );
    write(
        d,
        "root.toml",
        &format!("{IMAGE}[boot]\ncmdline = [\"quiet\", \"roothash=00\"]\n"),
    );
    assert_invalid(
        d,
        "root.toml",
        "root.toml:5:21: kiln sets roothash= itself (the verified root); remove it from cmdline",
        "\"roothash=00\"",
    );
    write(
        d,
        "dollar.toml",
        &format!("{IMAGE}[boot]\ncmdline = [\"x=${{net0/ip}}\"]\n"),
    );
    assert_invalid(
        d,
        "dollar.toml",
        "dollar.toml:5:12: a kernel argument must not contain $: the PXE boot script (iPXE) would expand it",
        "\"x=${net0/ip}\"",
    );
    write(d, "next.pub", "not a key\n");
    write(
        d,
        "keys.toml",
        &format!("{IMAGE}[boot]\npxe_keys = [\"next.pub\"]\n"),
    );
    assert_invalid(
        d,
        "keys.toml",
        "keys.toml:5:13: \"next.pub\" is not a minisign public key: public key file: invalid base64: Invalid symbol 32, offset 3.",
        "\"next.pub\"",
    );
}

#[test]
fn network_section_errors_point_at_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let boot = "[boot]\nformats = [\"rootfs\"]\n";
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "dhcp = \"maybe\"",
            "7:8",
            "dhcp is \"maybe\"; write one of \"yes\", \"ipv4\", \"ipv6\", \"no\"",
            "\"maybe\"",
        ),
        (
            "address = [\"192.0.2.20\"]",
            "7:12",
            "address \"192.0.2.20\" needs its prefix length, like \"192.0.2.20/24\" or \"2001:db8::20/64\"",
            "\"192.0.2.20\"",
        ),
        (
            "gateway = [\"192.0.2.1\", \"router\"]",
            "7:25",
            "gateway \"router\" is not an IP address, like \"192.0.2.1\"",
            "\"router\"",
        ),
        (
            "ntp = [\"ntp example\"]",
            "7:8",
            "ntp \"ntp example\" is not a host name or IP address, like \"ntp.example.org\"",
            "\"ntp example\"",
        ),
        (
            "speed = 10",
            "7:1",
            "unknown field \"speed\"; valid fields here: match, dhcp, address, gateway, dns, ntp, domains",
            "speed",
        ),
    ];
    for (i, (line, at, message, underlined)) in cases.iter().enumerate() {
        let name = format!("network{i}.toml");
        write(d, &name, &format!("{IMAGE}{boot}[network]\n{line}\n"));
        assert_invalid(d, &name, &format!("{name}:{at}: {message}"), underlined);
    }
    write(
        d,
        "alone.toml",
        &format!("{IMAGE}[network]\ndhcp = \"no\"\n"),
    );
    assert_invalid(
        d,
        "alone.toml",
        "alone.toml:4:1: [network] configures a node that boots from kiln's disk; add a [boot] section",
        "[network]",
    );
}
