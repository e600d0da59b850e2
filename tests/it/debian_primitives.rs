//! Cross-checks the Debian primitives against the real dpkg tools and the
//! machine's own package databases.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use kiln_debian::arch;
use kiln_debian::deb822::{self, Paragraph};
use kiln_debian::relation::Relations;
use kiln_debian::version::Version;

const DPKG: &str = "/usr/bin/dpkg";
const DPKG_QUERY: &str = "/usr/bin/dpkg-query";
const STATUS: &str = "/var/lib/dpkg/status";

const RELATION_FIELDS: &[&str] = &[
    "Depends",
    "Pre-Depends",
    "Recommends",
    "Suggests",
    "Enhances",
    "Conflicts",
    "Breaks",
    "Provides",
    "Replaces",
];

/// Hand-picked versions; every pair of them is compared.
const POOL: &[&str] = &[
    "0",
    "00",
    "0.",
    "0.0",
    "0:0",
    "1",
    "1.0",
    "1.00",
    "1.0.",
    "1.0.0",
    "1.0-0",
    "1.0-00",
    "0:1.0",
    "1:1.0",
    "1.0-1",
    "1.0-1~bpo1",
    "1.0-1+b1",
    "1.0-1.1",
    "1.0-0.1",
    "1.0-9",
    "1.0-10",
    "1.0-a",
    "1.0-A",
    "1.0-~",
    "1.0~rc1",
    "1.0~rc1-1",
    "1.0~rc1+b1",
    "1.0~~",
    "1.0~",
    "1.0+~",
    "1.0+b1",
    "1.0+",
    "1.0a",
    "1.0A",
    "1.0+dfsg-1",
    "1.0+dfsg1-1",
    "1.0.dfsg-1",
    "1.2.3-4-5",
    "1.2.3-4.5",
    "1:2:3",
    "1:2.3",
    "9.0",
    "10.0",
    "2:0",
    "1.18446744073709551615",
    "1.18446744073709551616",
    "1.99999999999999999999999999",
    "1.000000000000000000000000001",
    "a",
    "~",
    "1:1.0~rc1+git20200101.abcdef-0ubuntu1~20.04.1",
];

/// Versions assembled from parts, so that epochs, tildes and revisions
/// meet in every combination.
fn combinations() -> Vec<String> {
    let mut out = Vec::new();
    for epoch in ["", "1:"] {
        for upstream in ["1.0", "1.00", "1.0~rc1", "1.0+b1"] {
            for revision in ["", "-0", "-1", "-1~"] {
                out.push(format!("{epoch}{upstream}{revision}"));
            }
        }
    }
    out
}

fn pairs() -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut all_pairs = |list: &[String]| {
        for (i, a) in list.iter().enumerate() {
            for b in &list[i..] {
                pairs.push((a.clone(), b.clone()));
            }
        }
    };
    all_pairs(&POOL.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    all_pairs(&combinations());
    pairs
}

/// Asks dpkg for the order of every pair, in a few shell scripts run in
/// parallel (thousands of separate spawns from Rust would be slower).
fn dpkg_orders(pairs: &[(String, String)]) -> Vec<&'static str> {
    const COMPARE: &str = r#"c() {
  dpkg --compare-versions "$1" lt "$2" 2>/dev/null; r=$?
  if [ $r = 0 ]; then echo lt; return; fi
  if [ $r != 1 ]; then echo error; return; fi
  dpkg --compare-versions "$1" eq "$2" 2>/dev/null; r=$?
  if [ $r = 0 ]; then echo eq; elif [ $r = 1 ]; then echo gt; else echo error; fi
}
"#;
    let chunks: Vec<_> = pairs.chunks(pairs.len().div_ceil(4)).collect();
    let children: Vec<_> = chunks
        .iter()
        .map(|chunk| {
            let mut script = COMPARE.to_string();
            for (a, b) in *chunk {
                // Only version characters, so single quotes are safe.
                assert!(!a.contains('\'') && !b.contains('\''));
                script.push_str(&format!("c '{a}' '{b}'\n"));
            }
            Command::new("sh")
                .args(["-c", &script])
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn sh")
        })
        .collect();
    let mut orders = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("run sh");
        assert!(out.status.success(), "comparison script failed");
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            orders.push(match line {
                "lt" => "lt",
                "eq" => "eq",
                "gt" => "gt",
                _ => "error",
            });
        }
    }
    assert_eq!(orders.len(), pairs.len(), "dpkg answered for every pair");
    orders
}

fn name(ord: Ordering) -> &'static str {
    match ord {
        Ordering::Less => "lt",
        Ordering::Equal => "eq",
        Ordering::Greater => "gt",
    }
}

/// The oracles are installed by `just deps`; without one a test fails.
fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: apt-get install {package} (the test oracle)"
    );
}

#[test]
fn version_order_matches_dpkg() {
    require(DPKG, "dpkg");
    let pairs = pairs();
    assert!(pairs.len() >= 200);
    let expected = dpkg_orders(&pairs);
    let mut mismatches = Vec::new();
    for ((a, b), dpkg) in pairs.iter().zip(expected) {
        let (va, vb) = match (a.parse::<Version>(), b.parse::<Version>()) {
            (Ok(va), Ok(vb)) => (va, vb),
            (Err(e), _) | (_, Err(e)) => {
                mismatches.push(format!("{a} vs {b}: kiln cannot parse: {e}"));
                continue;
            }
        };
        let kiln = name(va.cmp(&vb));
        if kiln != dpkg {
            mismatches.push(format!("{a} vs {b}: dpkg says {dpkg}, kiln says {kiln}"));
        }
        if vb.cmp(&va) != va.cmp(&vb).reverse() {
            mismatches.push(format!("{a} vs {b}: kiln's order is not antisymmetric"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} comparisons disagree with dpkg:\n{}",
        mismatches.len(),
        pairs.len(),
        mismatches.join("\n")
    );
}

/// Checks every version and relation field of a control file, returning
/// the number of paragraphs. Collects all problems before failing.
fn check_control_file(label: &str, text: &str) -> usize {
    let mut problems = Vec::new();
    let mut count = 0;
    for para in deb822::paragraphs(text) {
        let para = para.unwrap_or_else(|e| panic!("{label}: {e}"));
        count += 1;
        let line = para.line().unwrap_or(0);
        if para.get("Package").is_none() {
            problems.push(format!("{label}:{line}: no Package field"));
        }
        // Cargo.toml's rust-version (1.85) predates let chains.
        if let Some(Err(e)) = para.get("Version").map(str::parse::<Version>) {
            problems.push(format!("{label}:{line}: {e}"));
        }
        for field in RELATION_FIELDS {
            if let Some(Err(e)) = para.get(field).map(|v| Relations::parse_field(field, v)) {
                problems.push(format!("{label}:{line}: {e}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    count
}

fn render(paragraphs: &[Paragraph<'_>]) -> String {
    paragraphs.iter().map(|p| format!("{p}\n")).collect()
}

#[test]
fn dpkg_status_parses_and_round_trips() {
    let text = std::fs::read_to_string(STATUS).unwrap_or_else(|e| panic!("{STATUS}: {e}"));
    let count = check_control_file(STATUS, &text);
    assert!(count > 0, "{STATUS} has no packages");
    // dpkg ends every paragraph with an empty line; the writer must give
    // the file back byte for byte.
    let paragraphs: Vec<_> = deb822::paragraphs(&text).map(Result::unwrap).collect();
    assert!(render(&paragraphs) == text, "{STATUS} does not round-trip");

    let available = "/var/lib/dpkg/available";
    if let Ok(text) = std::fs::read_to_string(available) {
        check_control_file(available, &text);
    }
}

/// Reads an apt list, decompressing it with apt's own helper.
fn read_list(path: &Path) -> Option<String> {
    let compressed = ["lz4", "gz", "xz", "zst", "bz2", "lzma"]
        .iter()
        .any(|ext| path.extension().is_some_and(|e| e == *ext));
    if !compressed {
        return std::fs::read_to_string(path).ok();
    }
    let out = Command::new("/usr/lib/apt/apt-helper")
        .arg("cat-file")
        .arg(path)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).expect("UTF-8 Packages file"))
}

/// The host's apt lists of one kind; none is a failure, not a pass
/// without a check.
fn apt_lists(kind: &str) -> Vec<std::path::PathBuf> {
    const LISTS: &str = "/var/lib/apt/lists";
    let dir = std::fs::read_dir(LISTS).unwrap_or_else(|e| panic!("{LISTS}: {e}"));
    let mut paths: Vec<_> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(kind) || name.contains(&format!("{kind}."))
        })
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "no *{kind} lists in {LISTS}: these tests read the host's apt lists; \
         run `apt-get update` once (as root), then rerun"
    );
    paths
}

#[test]
fn apt_package_indexes_parse() {
    let mut largest = String::new();
    for path in apt_lists("_Packages") {
        let text = read_list(&path)
            .unwrap_or_else(|| panic!("{}: apt-helper cannot decompress it", path.display()));
        let count = check_control_file(&path.display().to_string(), &text);
        assert!(count > 0, "{}: no packages", path.display());
        eprintln!("{}: {count} packages", path.display());
        if text.len() > largest.len() {
            largest = text;
        }
    }
    report_speed(&largest);
}

/// Prints parse throughput; meaningful with `cargo test --release`.
fn report_speed(text: &str) {
    let mb = text.len() as f64 / 1e6;
    let start = Instant::now();
    let fields: usize = deb822::paragraphs(text)
        .map(|p| p.unwrap().fields().len())
        .sum();
    let deb822_time = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut groups = 0;
    for para in deb822::paragraphs(text) {
        let para = para.unwrap();
        for field in RELATION_FIELDS {
            if let Some(value) = para.get(field) {
                groups += Relations::parse_field(field, value).unwrap().0.len();
            }
        }
    }
    let relation_time = start.elapsed().as_secs_f64();
    eprintln!(
        "{mb:.1} MB, {fields} fields: deb822 {:.0} MB/s; deb822 + {groups} relation groups {:.0} MB/s",
        mb / deb822_time,
        mb / relation_time
    );
}

/// InRelease is clearsigned: armor header lines, an empty line, the body,
/// then the signature.
fn release_body(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("-----BEGIN PGP SIGNED MESSAGE-----\n") else {
        return text;
    };
    let body = rest.split_once("\n\n").map_or(rest, |(_, body)| body);
    body.split_once("\n-----BEGIN PGP SIGNATURE-----")
        .map_or(body, |(body, _)| body)
}

#[test]
fn apt_release_files_parse() {
    for path in apt_lists("Release") {
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let label = path.display();
        let paragraphs: Vec<_> = deb822::paragraphs(release_body(&text))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(paragraphs.len(), 1, "{label}");
        let release = &paragraphs[0];
        let sha256 = release
            .field("SHA256")
            .unwrap_or_else(|| panic!("{label}: no SHA256"));
        let mut entries = 0;
        for line in sha256.lines() {
            let parts: Vec<_> = line.split_whitespace().collect();
            let ok = matches!(parts[..], [hash, size, _path]
                if hash.len() == 64
                    && hash.bytes().all(|b| b.is_ascii_hexdigit())
                    && size.parse::<u64>().is_ok());
            assert!(ok, "{label}: bad SHA256 line {line:?}");
            entries += 1;
        }
        assert!(entries > 0, "{label}: empty SHA256 list");
    }
}

#[test]
fn relations_agree_with_dpkg_query() {
    require(DPKG_QUERY, "dpkg");
    let text = std::fs::read_to_string(STATUS).unwrap_or_else(|e| panic!("{STATUS}: {e}"));
    let fields = ["Depends", "Pre-Depends", "Conflicts", "Breaks", "Provides"];
    let format: String = ["Package", "Architecture"]
        .iter()
        .chain(&fields)
        .map(|f| format!("${{{f}}}"))
        .collect::<Vec<_>>()
        .join("\t");
    let out = Command::new(DPKG_QUERY)
        .args(["-W", &format!("-f={format}\n")])
        .output()
        .expect("run dpkg-query");
    assert!(out.status.success(), "dpkg-query failed");
    let out = String::from_utf8(out.stdout).unwrap();

    let mut status = HashMap::new();
    for para in deb822::paragraphs(&text) {
        let para = para.unwrap();
        let key = (
            para.get("Package").unwrap_or("").to_string(),
            para.get("Architecture").unwrap_or("").to_string(),
        );
        status.insert(key, para);
    }

    let mut mismatches = Vec::new();
    let mut checked = 0;
    for row in out.lines() {
        let cols: Vec<_> = row.split('\t').collect();
        assert_eq!(cols.len(), 2 + fields.len(), "dpkg-query row {row:?}");
        let key = (cols[0].to_string(), cols[1].to_string());
        let Some(para) = status.get(&key) else {
            mismatches.push(format!("{key:?}: listed by dpkg-query, not in {STATUS}"));
            continue;
        };
        for (field, dpkg) in fields.iter().zip(&cols[2..]) {
            let ours = Relations::parse_field(field, para.get(field).unwrap_or(""))
                .unwrap_or_else(|e| panic!("{}: {e}", key.0));
            let dpkg_groups = if dpkg.is_empty() {
                0
            } else {
                dpkg.split(", ").count()
            };
            if ours.0.len() != dpkg_groups {
                mismatches.push(format!(
                    "{} {field}: kiln sees {} groups, dpkg {dpkg_groups}",
                    key.0,
                    ours.0.len()
                ));
            }
            // dpkg prints relations in the same normalised form.
            let rendered = ours.to_string();
            if rendered != *dpkg {
                mismatches.push(format!(
                    "{} {field}: kiln renders {rendered:?}, dpkg {dpkg:?}",
                    key.0
                ));
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "dpkg-query listed no packages");
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn versions_dpkg_rejects_are_rejected() {
    require(DPKG, "dpkg");
    // dpkg reads an empty argument as "no version", so "" is not here.
    let bad = [
        " ",
        ":1",
        "a:1",
        "-1:1",
        "1:",
        "1.0-",
        "-1",
        "1:-1",
        "1 2",
        "99999999999:1",
        "1.0-1:2",
    ];
    let pairs: Vec<_> = bad
        .iter()
        .map(|b| (b.to_string(), "1".to_string()))
        .collect();
    for ((input, _), dpkg) in pairs.iter().zip(dpkg_orders(&pairs)) {
        assert_eq!(dpkg, "error", "dpkg accepts {input:?}");
        assert!(
            input.parse::<Version>().is_err(),
            "kiln accepts {input:?}, dpkg does not"
        );
    }
}

/// Compares architecture wildcard matching with dpkg-dev's own
/// `Dpkg::Arch::debarch_is`, all pairs in one perl process.
#[test]
fn arch_wildcards_match_dpkg_dev() {
    let archs = [
        "amd64",
        "arm64",
        "armhf",
        "armel",
        "i386",
        "x32",
        "mips64el",
        "powerpcspe",
        "arm64ilp32",
        "hurd-i386",
        "kfreebsd-amd64",
        "musl-linux-arm64",
        "uclibc-linux-armel",
        "mint-m68k",
        "nonsense",
    ];
    let patterns = [
        "any",
        "all",
        "linux-any",
        "any-amd64",
        "any-arm",
        "any-armhf",
        "any-i386",
        "any-arm64",
        "hurd-any",
        "kfreebsd-any",
        "gnu-any-any",
        "musl-any-any",
        "eabihf-any-any-any",
        "base-gnu-linux-any",
        "any-linux-any",
        "amd64",
        "armhf",
        "mips64el",
        "any-mips64el",
        "nonsense",
    ];
    let mut args = Vec::new();
    for a in archs {
        for p in patterns {
            args.extend([a, p]);
        }
    }
    let script = r#"use Dpkg::Arch qw(debarch_is);
while (@ARGV) { my ($a, $p) = splice(@ARGV, 0, 2); print debarch_is($a, $p) ? "1\n" : "0\n"; }"#;
    let out = Command::new("perl")
        .args(["-e", script])
        .args(&args)
        .output()
        .expect("perl is missing: apt-get install perl-base");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("Can't locate Dpkg/Arch.pm"),
        "Dpkg::Arch is missing: apt-get install libdpkg-perl (the test oracle)"
    );
    assert!(out.status.success(), "perl failed: {stderr}");
    let answers: Vec<bool> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l == "1")
        .collect();
    assert_eq!(answers.len(), args.len() / 2);
    let mismatches: Vec<String> = args
        .chunks(2)
        .zip(answers)
        .filter(|(pair, dpkg)| arch::matches(pair[0], pair[1]) != *dpkg)
        .map(|(pair, dpkg)| format!("{} against {}: dpkg-dev says {dpkg}", pair[0], pair[1]))
        .collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
