//! The command line as other tools see it (issue #12): completion scripts
//! that bash, zsh and fish themselves parse, a manual page groff renders
//! without a warning, and README's usage section naming exactly the
//! commands `kiln --help` lists.

use crate::common;

use common::*;
use std::process::Command;

fn kiln_stdout(args: &[&str]) -> String {
    String::from_utf8(run_ok(kiln().args(args)).stdout).unwrap()
}

#[test]
fn completions_parse_in_their_shells_and_know_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, check) in [
        ("bash", &["bash", "-n"][..]),
        ("zsh", &["zsh", "-n"]),
        ("fish", &["fish", "--no-execute"]),
    ] {
        let script = kiln_stdout(&["completions", shell]);
        for word in ["build", "verify", "format", "min-version"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
        let file = dir.path().join(format!("kiln.{shell}"));
        std::fs::write(&file, &script).unwrap();
        run_ok(Command::new(check[0]).args(&check[1..]).arg(&file));
    }
    // bash offers the subcommands after `kiln `
    let file = dir.path().join("kiln.bash");
    let out = run_ok(Command::new("bash").arg("-c").arg(format!(
        "source '{}'; COMP_WORDS=(kiln ver); COMP_CWORD=1; _kiln kiln ver kiln; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display()
    )));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "verify");
}

#[test]
fn the_manual_page_renders_cleanly() {
    let page = kiln_stdout(&["man"]);
    assert!(page.starts_with(".ie"), "{}", &page[..page.len().min(200)]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kiln.1");
    std::fs::write(&file, &page).unwrap();
    let out = run_ok(
        Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&file),
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warned");
    let text = run_ok(
        Command::new("groff")
            .args(["-man", "-Tutf8", "-P-cbou"])
            .arg(&file),
    );
    let text = String::from_utf8_lossy(&text.stdout);
    for word in ["SUBCOMMANDS", "kiln-build(1)", "--quiet"] {
        assert!(text.contains(word), "no {word} in the page:\n{text}");
    }
    // the same every time: no date in it
    assert_eq!(kiln_stdout(&["man"]), page);
    // the pages it refers to exist
    let build = kiln_stdout(&["man", "build"]);
    std::fs::write(&file, &build).unwrap();
    let text = run_ok(
        Command::new("groff")
            .args(["-man", "-Tutf8", "-P-cbou", "-ww"])
            .arg(&file),
    );
    assert_eq!(String::from_utf8_lossy(&text.stderr), "", "groff warned");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("kiln-build") && text.contains("--format"),
        "{text}"
    );
    let out = kiln().args(["man", "bild"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kiln has no command \"bild\""));
}

#[test]
fn readme_usage_names_every_command() {
    let help = kiln_stdout(&["--help"]);
    let listed: std::collections::BTreeSet<String> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        // a command's line; its description's continuation is indented more
        .filter_map(|l| l.strip_prefix("  ").filter(|r| !r.starts_with(' ')))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect();
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let usage = readme
        .split("## Usage\n\n```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let documented: std::collections::BTreeSet<String> = usage
        .lines()
        .filter_map(|l| l.strip_prefix("kiln "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| !w.starts_with('-'))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        documented, listed,
        "README's usage section and `kiln --help` list different commands"
    );
}

#[test]
fn fetch_and_keygen_report_as_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k3s"), "stand-in\n").unwrap();
    let digest = sha256_file(&dir.path().join("k3s"));
    std::fs::write(
        dir.path().join("r.toml"),
        format!(
            "[image]\nname = \"n\"\nversion = \"1\"\n[[artifact]]\nname = \"k3s\"\npath = \"k3s\"\n\
             sha256 = \"{digest}\"\ndest = \"/usr/local/bin/k3s\"\n"
        ),
    )
    .unwrap();
    let out = run_ok(kiln().current_dir(dir.path()).args([
        "fetch",
        "r.toml",
        "--cache-dir",
        "cache",
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["packages"], serde_json::json!([]));
    assert_eq!(report["artifacts"][0]["name"], "k3s");
    assert_eq!(report["artifacts"][0]["sha256"], digest.as_str());
    let cached = report["artifacts"][0]["path"].as_str().unwrap();
    assert_eq!(sha256_file(&dir.path().join(cached)), digest);

    let out = run_ok(kiln().current_dir(dir.path()).args([
        "keygen",
        "-o",
        "keys/k",
        "--no-password",
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["public"], "keys/k.pub");
    assert_eq!(report["secret"], "keys/k.key");
    let id = report["key_id"].as_str().unwrap();
    assert_eq!(id.len(), 16, "{report}");
    let public = std::fs::read_to_string(dir.path().join("keys/k.pub")).unwrap();
    assert!(public.contains(id), "{public}");
}
