//! Unified diffs byte for byte as GNU `diff -u` prints them, from a Myers
//! search of the lines that GNU diff would compare.
//
// Why not the `similar` crate (3.2.1, tried against GNU diff 3.8): its
// diffs are valid, but where several equally short ones exist it often
// picks another than GNU. `a\nb\n` → `b\na\n`: GNU keeps `b` (`-a`, ` b`,
// `+a`), similar keeps `a` (`+b`, ` a`, `-b`). With its Myers (its printer
// or ours), `random_diffs_match_gnu_diff` fails: 213 of its 400 pairs
// differ (patience and histogram do no better). Its line splitting also
// ends a line at a lone `\r`, and prints no `\ No newline at end of file`
// after a last line ending in `\r`; GNU splits at `\n` only. The diffs in
// tests/diff.rs pass either way: each has only one shortest form.

use std::collections::HashMap;

/// Lines of context around each change in the unified diffs.
pub const CONTEXT_LINES: usize = 3;

/// The unified diff of two texts as GNU `diff -u --label OLD_LABEL
/// --label NEW_LABEL` prints it: empty when they are equal.
pub fn unified_diff(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    let bytes = unified(
        old.as_bytes(),
        new.as_bytes(),
        old_label,
        new_label,
        CONTEXT_LINES,
        COST_LIMIT,
    );
    // Lines of UTF-8 text are UTF-8; lossy costs nothing when they are.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Beyond this many edits from either end of one middle-snake search,
/// settle for the point that got furthest: the diff stays correct but
/// may be a little longer than the shortest. Stretches of up to twice
/// this many changed lines still get the shortest diff; two unrelated
/// 100,000-line files take about 2 s (release build) instead of minutes.
const COST_LIMIT: usize = 1024;

fn unified(
    old: &[u8],
    new: &[u8],
    old_label: &str,
    new_label: &str,
    context: usize,
    cost_limit: usize,
) -> Vec<u8> {
    let a: Vec<&[u8]> = old.split_inclusive(|&b| b == b'\n').collect();
    let b: Vec<&[u8]> = new.split_inclusive(|&b| b == b'\n').collect();
    let (deleted, inserted) = windowed_edit_flags(&a, &b, context, cost_limit);
    let changes = changes(&deleted, &inserted);
    let mut out = Vec::new();
    if changes.is_empty() {
        return out;
    }
    out.extend_from_slice(format!("--- {old_label}\n+++ {new_label}\n").as_bytes());
    let line = |out: &mut Vec<u8>, prefix: u8, line: &[u8]| {
        out.push(prefix);
        out.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            out.extend_from_slice(b"\n\\ No newline at end of file\n");
        }
    };
    let mut first = 0;
    while first < changes.len() {
        // A hunk takes every following change whose gap from the one
        // before is at most twice the context, as GNU diff does.
        let mut last = first;
        while last + 1 < changes.len()
            && changes[last + 1].old - changes[last].old_end() <= 2 * context
        {
            last += 1;
        }
        let (start, end) = (&changes[first], &changes[last]);
        let old_lo = start.old.saturating_sub(context);
        let new_lo = start.new - (start.old - old_lo);
        let old_hi = (end.old_end() + context).min(a.len());
        let new_hi = end.new_end() + (old_hi - end.old_end());
        out.extend_from_slice(
            format!(
                "@@ -{} +{} @@\n",
                hunk_range(old_lo, old_hi),
                hunk_range(new_lo, new_hi)
            )
            .as_bytes(),
        );
        let mut i = old_lo;
        for change in &changes[first..=last] {
            for l in &a[i..change.old] {
                line(&mut out, b' ', l);
            }
            for l in &a[change.old..change.old_end()] {
                line(&mut out, b'-', l);
            }
            for l in &b[change.new..change.new_end()] {
                line(&mut out, b'+', l);
            }
            i = change.old_end();
        }
        for l in &a[i..old_hi] {
            line(&mut out, b' ', l);
        }
        first = last + 1;
    }
    out
}

/// GNU's `start,count` for lines `[lo, hi)` (0-based): the count is left
/// out when it is 1; an empty range names the line before it.
fn hunk_range(lo: usize, hi: usize) -> String {
    match hi - lo {
        0 => format!("{lo},0"),
        1 => format!("{}", lo + 1),
        n => format!("{},{n}", lo + 1),
    }
}

/// Lines `old..old+deleted` of the old text replaced by `new..new+inserted`
/// of the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Change {
    old: usize,
    new: usize,
    deleted: usize,
    inserted: usize,
}

impl Change {
    fn old_end(&self) -> usize {
        self.old + self.deleted
    }

    fn new_end(&self) -> usize {
        self.new + self.inserted
    }
}

/// The runs of deleted and inserted lines, in order.
fn changes(deleted: &[bool], inserted: &[bool]) -> Vec<Change> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < deleted.len() || j < inserted.len() {
        let (old, new) = (i, j);
        while i < deleted.len() && deleted[i] {
            i += 1;
        }
        while j < inserted.len() && inserted[j] {
            j += 1;
        }
        if i > old || j > new {
            out.push(Change {
                old,
                new,
                deleted: i - old,
                inserted: j - new,
            });
        }
        // Unchanged lines pair up, one on each side.
        i += 1;
        j += 1;
    }
    out
}

/// [`edit_flags`] on the lines between the common prefix and the common
/// suffix, each kept to `context` lines. GNU diff compares just that
/// window, so runs of changes slide no further than it: doing the same
/// gives the same hunks.
fn windowed_edit_flags(
    a: &[&[u8]],
    b: &[&[u8]],
    context: usize,
    cost_limit: usize,
) -> (Vec<bool>, Vec<bool>) {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let start = prefix.saturating_sub(context);
    let suffix = (a.iter().rev().zip(b.iter().rev()))
        .take(a.len().min(b.len()) - start)
        .take_while(|(x, y)| x == y)
        .count();
    let cut = suffix - suffix.min(context);
    let (a_end, b_end) = (a.len() - cut, b.len() - cut);
    let (window_deleted, window_inserted) =
        edit_flags(&a[start..a_end], &b[start..b_end], cost_limit);
    let mut deleted = vec![false; a.len()];
    let mut inserted = vec![false; b.len()];
    deleted[start..a_end].copy_from_slice(&window_deleted);
    inserted[start..b_end].copy_from_slice(&window_inserted);
    (deleted, inserted)
}

/// Which lines of `a` are deleted and which of `b` inserted by a shortest
/// edit script from `a` to `b` (within `cost_limit`, see [`COST_LIMIT`]),
/// its runs of changes then slid to where they read best.
fn edit_flags<'t>(a: &[&'t [u8]], b: &[&'t [u8]], cost_limit: usize) -> (Vec<bool>, Vec<bool>) {
    // Number the distinct lines, so comparing is comparing integers.
    let mut ids: HashMap<&'t [u8], u32> = HashMap::new();
    let mut number = |lines: &[&'t [u8]]| -> Vec<u32> {
        lines
            .iter()
            .map(|&line| {
                let next = ids.len() as u32;
                *ids.entry(line).or_insert(next)
            })
            .collect()
    };
    let a_ids = number(a);
    let b_ids = number(b);
    let mut in_a = vec![false; ids.len()];
    let mut in_b = vec![false; ids.len()];
    for &id in &a_ids {
        in_a[id as usize] = true;
    }
    for &id in &b_ids {
        in_b[id as usize] = true;
    }
    // A line with no equal on the other side is a change in every edit
    // script: leave it out of the search, which gets cheaper.
    let keep = |ids: &[u32], present: &[bool], changed: &mut Vec<bool>| {
        let mut kept = Vec::new();
        let mut index = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            if present[id as usize] {
                kept.push(id);
                index.push(i);
            } else {
                changed[i] = true;
            }
        }
        (kept, index)
    };
    let mut deleted = vec![false; a.len()];
    let mut inserted = vec![false; b.len()];
    let (xa, a_index) = keep(&a_ids, &in_b, &mut deleted);
    let (xb, b_index) = keep(&b_ids, &in_a, &mut inserted);
    let mut xdeleted = vec![false; xa.len()];
    let mut xinserted = vec![false; xb.len()];
    Myers::new(&xa, &xb, cost_limit).run(&mut xdeleted, &mut xinserted);
    for (i, _) in xdeleted.iter().enumerate().filter(|(_, d)| **d) {
        deleted[a_index[i]] = true;
    }
    for (j, _) in xinserted.iter().enumerate().filter(|(_, d)| **d) {
        inserted[b_index[j]] = true;
    }
    slide(&a_ids, &mut deleted, &inserted);
    slide(&b_ids, &mut inserted, &deleted);
    (deleted, inserted)
}

/// Myers' O(ND) difference algorithm, linear-space variant: find the
/// middle of a shortest edit path searching from both ends at once,
/// split the problem there, repeat on both halves.
struct Myers<'a> {
    a: &'a [u32],
    b: &'a [u32],
    /// Furthest x reached on each diagonal, forward and (on the reversed
    /// sequences) backward.
    forward: Vec<isize>,
    backward: Vec<isize>,
    cost_limit: usize,
}

impl<'a> Myers<'a> {
    fn new(a: &'a [u32], b: &'a [u32], cost_limit: usize) -> Self {
        Myers {
            a,
            b,
            forward: Vec::new(),
            backward: Vec::new(),
            cost_limit: cost_limit.max(1),
        }
    }

    fn run(&mut self, deleted: &mut [bool], inserted: &mut [bool]) {
        let mut work = vec![(0, self.a.len(), 0, self.b.len())];
        while let Some((mut x0, mut x1, mut y0, mut y1)) = work.pop() {
            while x0 < x1 && y0 < y1 && self.a[x0] == self.b[y0] {
                x0 += 1;
                y0 += 1;
            }
            while x0 < x1 && y0 < y1 && self.a[x1 - 1] == self.b[y1 - 1] {
                x1 -= 1;
                y1 -= 1;
            }
            if x0 == x1 || y0 == y1 {
                inserted[y0..y1].fill(true);
                deleted[x0..x1].fill(true);
                continue;
            }
            match self.split(x0, x1, y0, y1) {
                Some((x, y)) => {
                    work.push((x, x1, y, y1));
                    work.push((x0, x, y0, y));
                }
                None => {
                    deleted[x0..x1].fill(true);
                    inserted[y0..y1].fill(true);
                }
            }
        }
    }

    /// A point on a shortest path from (x0, y0) to (x1, y1), other than
    /// its ends. Both ranges are non-empty and differ in their first and
    /// last lines. `None` only if the cost limit left no usable point.
    fn split(&mut self, x0: usize, x1: usize, y0: usize, y1: usize) -> Option<(usize, usize)> {
        let a = &self.a[x0..x1];
        let b = &self.b[y0..y1];
        let (n, m) = (a.len() as isize, b.len() as isize);
        let delta = n - m;
        let odd = delta & 1 == 1;
        let max_d = (n + m + 1) / 2;
        let limit = max_d.min(self.cost_limit as isize);
        let offset = limit + 1;
        let size = (2 * limit + 3) as usize;
        if self.forward.len() < size {
            self.forward.resize(size, 0);
            self.backward.resize(size, 0);
        }
        let (vf, vb) = (&mut self.forward, &mut self.backward);
        let at = |k: isize| (offset + k) as usize;
        vf[at(1)] = 0;
        vb[at(1)] = 0;
        // On diagonal k = x - y. The backward search runs on the reversed
        // sequences, where its diagonal c is delta - k.
        // Diagonals are visited from the most deletions to the most
        // insertions, as GNU diff does: of several shortest diffs, this
        // finds the one it prints.
        for d in 0..=limit {
            for k in (-d..=d).rev().step_by(2) {
                let mut x = if k == -d || (k != d && vf[at(k - 1)] < vf[at(k + 1)]) {
                    vf[at(k + 1)]
                } else {
                    vf[at(k - 1)] + 1
                };
                let mut y = x - k;
                while x < n && y < m && a[x as usize] == b[y as usize] {
                    x += 1;
                    y += 1;
                }
                vf[at(k)] = x;
                let c = delta - k;
                if odd && c.abs() < d && x + vb[at(c)] >= n {
                    // Met the backward search of cost d - 1.
                    debug_assert!(x <= n && y <= m, "split off the grid");
                    return (x <= n && y <= m).then(|| (x0 + x as usize, y0 + y as usize));
                }
            }
            for c in (-d..=d).step_by(2) {
                let mut u = if c == -d || (c != d && vb[at(c - 1)] < vb[at(c + 1)]) {
                    vb[at(c + 1)]
                } else {
                    vb[at(c - 1)] + 1
                };
                let mut v = u - c;
                while u < n && v < m && a[(n - 1 - u) as usize] == b[(m - 1 - v) as usize] {
                    u += 1;
                    v += 1;
                }
                vb[at(c)] = u;
                let k = delta - c;
                if !odd && k.abs() <= d && u + vf[at(k)] >= n {
                    // Met the forward search of cost d.
                    debug_assert!(u <= n && v <= m, "split off the grid");
                    return (u <= n && v <= m)
                        .then(|| (x0 + (n - u) as usize, y0 + (m - v) as usize));
                }
            }
        }
        // Too expensive: take the point that got furthest from its corner.
        let mut best: Option<(isize, isize, isize)> = None;
        for k in (-limit..=limit).step_by(2) {
            let (x, y) = (vf[at(k)], vf[at(k)] - k);
            let (u, v) = (vb[at(k)], vb[at(k)] - k);
            for (progress, x, y) in [(x + y, x, y), (u + v, n - u, m - v)] {
                let inside = (0..=n).contains(&x) && (0..=m).contains(&y);
                let corner = (x, y) == (0, 0) || (x, y) == (n, m);
                if inside && !corner && best.is_none_or(|b| progress > b.0) {
                    best = Some((progress, x, y));
                }
            }
        }
        best.map(|(_, x, y)| (x0 + x as usize, y0 + y as usize))
    }
}

/// Slides each run of changed lines of one text as far up as it can go,
/// then as far down, merging with the runs it meets (a run can move by
/// one when the line it would take in equals the line it would give
/// up); then back up to the last place where it faced changed lines of
/// the other text, so deletions and insertions line up. The edit script
/// stays as short; it reads as a person would write it: GNU diff and git
/// do the same. `other` marks the other text's changed lines.
fn slide(ids: &[u32], changed: &mut [bool], other: &[bool]) {
    let n = changed.len();
    let run_end = |flags: &[bool], mut i: usize| {
        while i < flags.len() && flags[i] {
            i += 1;
        }
        i
    };
    let run_start = |flags: &[bool], mut i: usize| {
        while i > 0 && flags[i - 1] {
            i -= 1;
        }
        i
    };
    // Groups: the (possibly empty) runs of changes between unchanged
    // lines. The k-th group of one text faces the k-th of the other.
    let (mut start, mut end) = (0, run_end(changed, 0));
    let (mut other_start, mut other_end) = (0, run_end(other, 0));
    loop {
        if end > start {
            let mut earliest_end;
            let mut facing_end;
            loop {
                let size = end - start;
                while start > 0 && ids[start - 1] == ids[end - 1] {
                    start -= 1;
                    end -= 1;
                    changed[start] = true;
                    changed[end] = false;
                    start = run_start(changed, start);
                    other_end = other_start - 1;
                    other_start = run_start(other, other_end);
                }
                earliest_end = end;
                facing_end = (other_end > other_start).then_some(end);
                while end < n && ids[start] == ids[end] {
                    changed[start] = false;
                    changed[end] = true;
                    start += 1;
                    end = run_end(changed, end + 1);
                    other_start = other_end + 1;
                    other_end = run_end(other, other_start);
                    if other_end > other_start {
                        facing_end = Some(end);
                    }
                }
                if end - start == size {
                    break;
                }
            }
            if let Some(target) = facing_end.filter(|_| end != earliest_end) {
                while end > target {
                    start -= 1;
                    end -= 1;
                    changed[start] = true;
                    changed[end] = false;
                    start = run_start(changed, start);
                    other_end = other_start - 1;
                    other_start = run_start(other, other_end);
                }
            }
        }
        if end == n {
            break;
        }
        start = end + 1;
        end = run_end(changed, start);
        other_start = other_end + 1;
        other_end = run_end(other, other_start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// GNU `diff -U CONTEXT` of two byte strings, with fixed labels.
    fn gnu_diff(old: &[u8], new: &[u8], context: usize) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let (o, n) = (dir.path().join("o"), dir.path().join("n"));
        std::fs::write(&o, old).unwrap();
        std::fs::write(&n, new).unwrap();
        let out = Command::new("diff")
            .arg(format!("-U{context}"))
            .args(["--label", "a/f", "--label", "b/f"])
            .args([&o, &n])
            .output()
            .expect("GNU diff runs");
        assert!(
            out.status.code() == Some(0) || out.status.code() == Some(1),
            "{out:?}"
        );
        out.stdout
    }

    fn ours(old: &[u8], new: &[u8], context: usize) -> Vec<u8> {
        unified(old, new, "a/f", "b/f", context, COST_LIMIT)
    }

    fn show(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// Edge cases of the format: empty texts, missing final newlines,
    /// changes at either end, hunks merged or not.
    const CASES: &[(&str, &str)] = &[
        ("", ""),
        ("a\nb\n", "a\nb\n"),
        ("", "a\nb\nc\n"),
        ("a\nb\nc\n", ""),
        ("x", ""),
        ("", "x"),
        ("a\nb\nc", "a\nb\nc\n"),
        ("a\nb\nc\n", "a\nb\nc"),
        ("a\nb\nc", "a\nb\nd"),
        ("a\nb\nc\nd\ne\nf\ng", "a\nB\nc\nd\ne\nf\ng"),
        ("a\nb\nc\nd\ne\nf\ng", "a\nb\nc\nd\ne\nF\ng"),
        ("one\n", "two\n"),
        ("one", "two"),
        // insertion at the start and at the end
        ("b\nc\nd\ne\nf\n", "a\nb\nc\nd\ne\nf\n"),
        ("a\nb\nc\nd\ne\n", "a\nb\nc\nd\ne\nf\n"),
        ("a\nb\nc\nd\ne", "a\nb\nc\nd\ne\nf\n"),
        // deletion at the start and at the end
        ("a\nb\nc\nd\ne\nf\n", "b\nc\nd\ne\nf\n"),
        ("a\nb\nc\nd\ne\nf\n", "a\nb\nc\nd\ne\n"),
        // changes 6 unchanged lines apart share a hunk, 7 apart do not
        (
            "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n",
            "1\nX\n3\n4\n5\n6\n7\n8\nY\n10\n11\n12\n",
        ),
        (
            "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n",
            "1\nX\n3\n4\n5\n6\n7\n8\n9\nY\n11\n12\n",
        ),
        // several hunks, insertions and deletions mixed
        (
            "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\nn\no\np\nq\nr\n",
            "a\nc\nd\ne\nf\ng\nh\nI\ni\nj\nk\nl\nm\nn\nN2\nN3\no\np\nq\nr\ns",
        ),
    ];

    #[test]
    fn matches_gnu_diff_on_fixed_cases() {
        for (old, new) in CASES {
            for context in [0, 1, 3, 5] {
                let expected = gnu_diff(old.as_bytes(), new.as_bytes(), context);
                let got = ours(old.as_bytes(), new.as_bytes(), context);
                assert_eq!(
                    show(&got),
                    show(&expected),
                    "old {old:?}, new {new:?}, context {context}"
                );
            }
        }
    }

    #[test]
    fn exact_output_for_documented_cases() {
        assert_eq!(unified_diff("same\n", "same\n", "o", "n"), "");
        assert_eq!(unified_diff("", "", "o", "n"), "");
        assert_eq!(
            unified_diff("", "a\n", "/dev/null", "new/etc/x"),
            "--- /dev/null\n+++ new/etc/x\n@@ -0,0 +1 @@\n+a\n"
        );
        assert_eq!(
            unified_diff("a\nb", "a\nb\n", "o", "n"),
            "--- o\n+++ n\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n"
        );
        // An unchanged last line without a newline is marked in the context too.
        assert_eq!(
            unified_diff("a\nb", "A\nb", "o", "n"),
            "--- o\n+++ n\n@@ -1,2 +1,2 @@\n-a\n+A\n b\n\\ No newline at end of file\n"
        );
    }

    /// Of several equally short diffs, the search picks the one GNU diff
    /// prints (same search order, same grouping of changes): checked here
    /// byte for byte, context sizes and missing final newlines included.
    /// (Should a future diffutils choose differently, the test below still
    /// proves every diff correct and shortest.)
    #[test]
    fn random_diffs_match_gnu_diff() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for round in 0..400 {
            let letters = 2 + rng.below(if round % 2 == 0 { 5 } else { 24 });
            let old = rng.text(30, letters);
            let new = rng.text(30, letters);
            let context = [3, 3, 1, 0][round % 4];
            let expected = gnu_diff(old.as_bytes(), new.as_bytes(), context);
            let got = ours(old.as_bytes(), new.as_bytes(), context);
            assert_eq!(
                show(&got),
                show(&expected),
                "old {old:?}, new {new:?}, context {context}"
            );
        }
    }

    /// A small deterministic generator (xorshift64*), for random inputs.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
        }

        /// Up to `max` lines over an alphabet of `letters` lines; sometimes
        /// without the final newline.
        fn text(&mut self, max: u64, letters: u64) -> String {
            let len = self.below(max + 1);
            let mut text: String = (0..len)
                .map(|_| format!("{}\n", (b'a' + self.below(letters) as u8) as char))
                .collect();
            if !text.is_empty() && self.below(4) == 0 {
                text.pop();
            }
            text
        }
    }

    /// Length of the longest common subsequence of lines, by dynamic
    /// programming: the reference for "shortest".
    fn lcs(a: &[&[u8]], b: &[&[u8]]) -> usize {
        let mut row = vec![0usize; b.len() + 1];
        for x in a {
            let mut diagonal = 0;
            for (j, y) in b.iter().enumerate() {
                let above = row[j + 1];
                row[j + 1] = if x == y {
                    diagonal + 1
                } else {
                    above.max(row[j])
                };
                diagonal = above;
            }
        }
        row[b.len()]
    }

    /// Applies a unified diff made by `unified` to `old`.
    fn apply(old: &[u8], diff: &[u8]) -> Vec<u8> {
        let old_lines: Vec<&[u8]> = old.split_inclusive(|&b| b == b'\n').collect();
        let mut out: Vec<u8> = Vec::new();
        let mut next = 0; // next old line to copy
        let lines: Vec<&[u8]> = diff.split_inclusive(|&b| b == b'\n').skip(2).collect();
        let mut i = 0;
        while i < lines.len() {
            let header = std::str::from_utf8(lines[i]).unwrap();
            let old_range = header.split(' ').nth(1).unwrap().trim_start_matches('-');
            let mut parts = old_range.split(',');
            let start: usize = parts.next().unwrap().parse().unwrap();
            let count: usize = parts.next().map_or(1, |c| c.parse().unwrap());
            let first = if count == 0 { start } else { start - 1 };
            for l in &old_lines[next..first] {
                out.extend_from_slice(l);
            }
            next = first;
            i += 1;
            while i < lines.len() && !lines[i].starts_with(b"@@") {
                let prefix = lines[i][0];
                let mut line = lines[i][1..].to_vec();
                i += 1;
                if lines.get(i).is_some_and(|l| l.starts_with(b"\\ ")) {
                    line.pop(); // the newline the marker stands for
                    i += 1;
                }
                match prefix {
                    b' ' => {
                        assert_eq!(old_lines[next], &line[..], "context");
                        out.extend_from_slice(&line);
                        next += 1;
                    }
                    b'-' => {
                        assert_eq!(old_lines[next], &line[..], "deleted line");
                        next += 1;
                    }
                    b'+' => out.extend_from_slice(&line),
                    other => panic!("unexpected line prefix {other:?}"),
                }
            }
        }
        for l in &old_lines[next..] {
            out.extend_from_slice(l);
        }
        out
    }

    #[test]
    fn random_diffs_are_shortest_and_apply() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..3000 {
            let letters = 1 + rng.below(6);
            let old = rng.text(14, letters);
            let new = rng.text(14, letters);
            let diff = ours(old.as_bytes(), new.as_bytes(), 1 + round % 4);
            assert_eq!(
                show(&apply(old.as_bytes(), &diff)),
                new,
                "{old:?} → {new:?}\n{}",
                show(&diff)
            );
            let a: Vec<&[u8]> = old.as_bytes().split_inclusive(|&b| b == b'\n').collect();
            let b: Vec<&[u8]> = new.as_bytes().split_inclusive(|&b| b == b'\n').collect();
            let (deleted, inserted) = edit_flags(&a, &b, COST_LIMIT);
            let edits = deleted.iter().chain(&inserted).filter(|c| **c).count();
            assert_eq!(
                edits,
                a.len() + b.len() - 2 * lcs(&a, &b),
                "{old:?} → {new:?}"
            );
        }
    }

    #[test]
    fn cost_limit_still_gives_a_correct_diff() {
        let mut rng = Rng(42);
        for _ in 0..500 {
            let old = rng.text(30, 3);
            let new = rng.text(30, 3);
            let diff = unified(old.as_bytes(), new.as_bytes(), "a", "b", 3, 1);
            assert_eq!(
                show(&apply(old.as_bytes(), &diff)),
                new,
                "{old:?} → {new:?}"
            );
        }
    }

    #[test]
    fn gnu_patch_applies_random_diffs() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(7);
        for _ in 0..60 {
            let old = rng.text(20, 4);
            let new = rng.text(20, 4);
            let diff = ours(old.as_bytes(), new.as_bytes(), 3);
            if diff.is_empty() {
                assert_eq!(old, new);
                continue;
            }
            let (o, d, out) = (
                dir.path().join("o"),
                dir.path().join("d"),
                dir.path().join("out"),
            );
            std::fs::write(&o, &old).unwrap();
            std::fs::write(&d, &diff).unwrap();
            let status = Command::new("patch")
                .args(["-s", "-f", "-o"])
                .arg(&out)
                .arg(&o)
                .arg(&d)
                .status()
                .expect("GNU patch runs");
            assert!(status.success(), "{old:?} → {new:?}\n{}", show(&diff));
            assert_eq!(show(&std::fs::read(&out).unwrap()), new, "{}", show(&diff));
        }
    }
}
