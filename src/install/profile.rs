//! Where the configure stage's time goes: each package's preinst and
//! postinst and each trigger run, from the timeline of the scripts'
//! progress lines (`isolate::Mark`). A step lasts from its line to the
//! next one, so dpkg's own bookkeeping between scripts is counted with the
//! step before it. `kiln build -v` and the benchmark print it.

use super::isolate::END_MARK;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// Before the first line: the shell and dpkg starting.
    Start,
    Preinst,
    /// dpkg's "Setting up": the postinst, or nothing when there is none.
    Postinst,
    /// "Processing triggers for": the postinst called with `triggered`.
    Triggers,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Start => "start-up",
            Step::Preinst => "preinst",
            Step::Postinst => "setting up",
            Step::Triggers => "triggers",
        }
    }
}

#[derive(Debug, PartialEq)]
pub struct Item {
    /// The package; empty for `Step::Start`.
    pub package: String,
    pub step: Step,
    pub seconds: f64,
    /// How often the step ran (a trigger may run more than once).
    pub runs: u32,
}

/// The steps, slowest first, and the whole run's seconds.
#[derive(Debug)]
pub struct Profile {
    pub items: Vec<Item>,
    pub total: f64,
}

/// Reads a timeline ("SECONDS\tLINE" per line, the last one `END_MARK`).
/// Lines it does not understand are skipped: the profile is a report,
/// never a reason to fail a build.
pub fn from_timeline(text: &str) -> Profile {
    let marks: Vec<(f64, &str)> = text
        .lines()
        .filter_map(|l| {
            let (secs, line) = l.split_once('\t')?;
            Some((secs.parse::<f64>().ok()?, line))
        })
        .collect();
    let mut items: Vec<Item> = Vec::new();
    let mut add = |package: &str, step: Step, seconds: f64| match items
        .iter_mut()
        .find(|i| i.package == package && i.step == step)
    {
        Some(item) => {
            item.seconds += seconds;
            item.runs += 1;
        }
        None => items.push(Item {
            package: package.to_owned(),
            step,
            seconds,
            runs: 1,
        }),
    };
    let mut previous = (0.0, Step::Start, "");
    for &(at, line) in &marks {
        let (began, step, package) = previous;
        add(package, step, (at - began).max(0.0));
        previous = match step_of(line) {
            Some((step, package)) => (at, step, package),
            None => (at, Step::Start, ""),
        };
        if line == END_MARK {
            break;
        }
    }
    let total = marks
        .iter()
        .rev()
        .find(|(_, l)| *l == END_MARK)
        .or(marks.last())
        .map_or(0.0, |(at, _)| *at);
    items.sort_by(|a, b| {
        b.seconds
            .total_cmp(&a.seconds)
            .then_with(|| (&a.package, a.step).cmp(&(&b.package, b.step)))
    });
    Profile { items, total }
}

/// "Setting up ca-certificates (20230311) ..." → (Postinst, "ca-certificates").
fn step_of(line: &str) -> Option<(Step, &str)> {
    let (step, rest) = if let Some(rest) = line.strip_prefix("kiln: preinst install ") {
        (Step::Preinst, rest)
    } else if let Some(rest) = line.strip_prefix("Setting up ") {
        (Step::Postinst, rest)
    } else {
        (
            Step::Triggers,
            line.strip_prefix("Processing triggers for ")?,
        )
    };
    // dpkg names a package with its architecture when more than one is
    // configured ("libc6:amd64").
    let name = rest.split_whitespace().next()?;
    Some((step, name.split(':').next().unwrap_or(name)))
}

impl Profile {
    /// The `top` slowest steps, one line each, then one line for the rest.
    pub fn lines(&self, top: usize) -> Vec<String> {
        let mut lines: Vec<String> = self
            .items
            .iter()
            .take(top)
            .map(|i| {
                let runs = match i.runs {
                    1 => String::new(),
                    n => format!(" ({n} runs)"),
                };
                let what = match i.step {
                    Step::Start => i.step.name().to_owned(),
                    step => format!("{} {}", i.package, step.name()),
                };
                format!("{:6.2}s  {what}{runs}", i.seconds)
            })
            .collect();
        let rest = &self.items[top.min(self.items.len())..];
        if !rest.is_empty() {
            let seconds: f64 = rest.iter().map(|i| i.seconds).sum();
            lines.push(format!("{seconds:6.2}s  {} other steps", rest.len()));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMELINE: &str = "0.050\tkiln: preinst install base-passwd\n\
        0.300\tSetting up ca-certificates (20230311) ...\n\
        2.300\tSetting up libc6:amd64 (2.36-9) ...\n\
        2.450\tProcessing triggers for ca-certificates (20230311) ...\n\
        3.900\tProcessing triggers for libc-bin (2.36-9) ...\n\
        4.000\tProcessing triggers for ca-certificates (20230311) ...\n\
        4.650\tkiln: end\n";

    #[test]
    fn each_step_lasts_until_the_next_line_and_repeats_add_up() {
        let profile = from_timeline(TIMELINE);
        assert_eq!(profile.total, 4.65);
        let got: Vec<(&str, Step, String, u32)> = profile
            .items
            .iter()
            .map(|i| {
                (
                    i.package.as_str(),
                    i.step,
                    format!("{:.2}", i.seconds),
                    i.runs,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("ca-certificates", Step::Triggers, "2.10".into(), 2),
                ("ca-certificates", Step::Postinst, "2.00".into(), 1),
                ("base-passwd", Step::Preinst, "0.25".into(), 1),
                ("libc6", Step::Postinst, "0.15".into(), 1),
                ("libc-bin", Step::Triggers, "0.10".into(), 1),
                ("", Step::Start, "0.05".into(), 1),
            ]
        );
        assert_eq!(
            profile.lines(2),
            vec![
                "  2.10s  ca-certificates triggers (2 runs)",
                "  2.00s  ca-certificates setting up",
                "  0.55s  4 other steps",
            ]
        );
    }

    #[test]
    fn a_timeline_it_cannot_read_gives_an_empty_profile() {
        for text in ["", "garbage\n", "x\tSetting up a (1) ...\n"] {
            let profile = from_timeline(text);
            assert!(profile.items.is_empty(), "{text:?}: {profile:?}");
            assert_eq!(profile.total, 0.0);
        }
        // a timeline cut short (no end mark) ends at its last line
        let profile = from_timeline("1.0\tSetting up a (1) ...\n");
        assert_eq!(profile.total, 1.0);
        assert_eq!(profile.lines(5), vec!["  1.00s  start-up"]);
    }
}
