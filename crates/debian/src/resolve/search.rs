//! The search itself: selecting packages depth first, trying alternatives
//! and providers in apt's order, rolling back a choice that fails.

use super::*;

/// Candidates (newest versions) providing `name`, one per package name.
pub(super) fn candidate_providers<'i>(index: &'i PackageIndex, name: &str) -> Vec<&'i Package> {
    let mut providers: Vec<&Package> = index
        .providers(name)
        .into_iter()
        .map(|p| p.package)
        .filter(|p| is_candidate(index, p))
        .collect();
    providers.dedup_by(|a, b| a.name == b.name);
    providers
}

pub(super) fn is_candidate(index: &PackageIndex, package: &Package) -> bool {
    index
        .candidate(&package.name)
        .is_some_and(|c| std::ptr::eq(c, package))
}

pub(super) enum Failure {
    Unsatisfiable(String),
    Abort,
}

/// A Conflicts or Breaks relation of a selected package.
pub(super) struct Negative<'i> {
    owner: &'i Package,
    relation: &'i Relation,
    breaks: bool,
}

pub(super) struct Resolver<'i, 'r> {
    pub(super) index: &'i PackageIndex,
    pub(super) arch: &'i str,
    pub(super) excluded: BTreeSet<&'r str>,
    pub(super) recommends: bool,
    pub(super) selected: HashMap<&'i str, Selected<'i>>,
    /// Selected packages in the order they were selected, for rollback.
    pub(super) log: Vec<&'i Package>,
    /// Name (real or provided) to the selected packages answering to it.
    pub(super) provided: HashMap<&'i str, Vec<&'i Package>>,
    /// Target name to the selected packages' Conflicts and Breaks on it.
    pub(super) negatives: HashMap<&'i str, Vec<Negative<'i>>>,
    pub(super) attempts: usize,
}

impl<'i> Resolver<'i, '_> {
    pub(super) fn applies(&self, relation: &Relation) -> bool {
        relation
            .archs
            .as_ref()
            .is_none_or(|list| list.matches(self.arch))
    }

    pub(super) fn select(&mut self, package: &'i Package, reason: Reason) {
        self.selected
            .insert(&package.name, Selected { package, reason });
        self.log.push(package);
        self.provided
            .entry(&package.name)
            .or_default()
            .push(package);
        for (name, _) in &package.provides {
            let list = self.provided.entry(name).or_default();
            if !list.iter().any(|p| std::ptr::eq(*p, package)) {
                list.push(package);
            }
        }
        for (relations, breaks) in [(&package.conflicts, false), (&package.breaks, true)] {
            for group in &relations.0 {
                for relation in &group.0 {
                    if self.applies(relation) {
                        self.negatives
                            .entry(&relation.name)
                            .or_default()
                            .push(Negative {
                                owner: package,
                                relation,
                                breaks,
                            });
                    }
                }
            }
        }
    }

    /// Forgets everything selected after the first `mark` packages.
    pub(super) fn rollback(&mut self, mark: usize) {
        while self.log.len() > mark {
            let Some(package) = self.log.pop() else {
                break;
            };
            self.selected.remove(package.name.as_str());
            let names = std::iter::once(package.name.as_str())
                .chain(package.provides.iter().map(|(n, _)| n.as_str()));
            for name in names {
                if let Some(list) = self.provided.get_mut(name) {
                    list.retain(|p| !std::ptr::eq(*p, package));
                    if list.is_empty() {
                        self.provided.remove(name);
                    }
                }
            }
            for relations in [&package.conflicts, &package.breaks] {
                for relation in relations.0.iter().flat_map(|g| &g.0) {
                    if let Some(list) = self.negatives.get_mut(relation.name.as_str()) {
                        list.retain(|n| !std::ptr::eq(n.owner, package));
                        if list.is_empty() {
                            self.negatives.remove(relation.name.as_str());
                        }
                    }
                }
            }
        }
    }

    /// Whether `package` satisfies `relation`, as itself or through its
    /// Provides. Negative relations ignore architecture qualifiers.
    pub(super) fn satisfies(&self, package: &Package, relation: &Relation, negative: bool) -> bool {
        if !negative {
            let qualifier_ok = match relation.arch_qualifier.as_deref() {
                None | Some("native") => true,
                Some("any") => package.multi_arch == MultiArch::Allowed,
                Some(arch) => arch == self.arch,
            };
            if !qualifier_ok {
                return false;
            }
        }
        if package.name == relation.name
            && relation
                .constraint
                .as_ref()
                .is_none_or(|(op, bound)| op.matches(&package.version, bound))
        {
            return true;
        }
        match package.provided_version(&relation.name) {
            None => false,
            Some(provided) => match (&relation.constraint, provided) {
                (None, _) => true,
                (Some((op, bound)), Some(version)) => op.matches(version, bound),
                (Some(_), None) => false,
            },
        }
    }

    pub(super) fn is_satisfied(&self, relation: &Relation) -> bool {
        self.provided
            .get(relation.name.as_str())
            .is_some_and(|list| list.iter().any(|p| self.satisfies(p, relation, false)))
    }

    /// `name (why)` for a selected package.
    pub(super) fn label(&self, name: &str) -> String {
        match self.selected.get(name) {
            Some(s) => format!("{name} ({})", self.phrase(&s.reason)),
            None => name.to_string(),
        }
    }

    pub(super) fn phrase(&self, reason: &Reason) -> String {
        phrase(reason, |name| self.selected.get(name).map(|s| &s.reason))
    }

    /// A message when `package` cannot coexist with the selection.
    pub(super) fn conflict(&self, package: &'i Package, reason: &Reason) -> Option<String> {
        let me = || {
            format!(
                "cannot install {} {} ({})",
                package.name,
                package.version,
                self.phrase(reason)
            )
        };
        for (relations, verb) in [
            (&package.conflicts, "conflicts with"),
            (&package.breaks, "breaks"),
        ] {
            for relation in relations.0.iter().flat_map(|g| &g.0) {
                if !self.applies(relation) {
                    continue;
                }
                let Some(list) = self.provided.get(relation.name.as_str()) else {
                    continue;
                };
                for other in list {
                    if other.name == package.name || !self.satisfies(other, relation, true) {
                        continue;
                    }
                    let why = self.phrase(&self.selected[other.name.as_str()].reason);
                    let tail = if other.name != relation.name {
                        format!(", which {} {} provides ({why})", other.name, other.version)
                    } else if relation.constraint.is_some() {
                        format!(", and {} {} is selected ({why})", other.name, other.version)
                    } else {
                        format!(" ({why})")
                    };
                    return Some(format!("{}: it {verb} {relation}{tail}", me()));
                }
            }
        }
        let names = std::iter::once(package.name.as_str())
            .chain(package.provides.iter().map(|(n, _)| n.as_str()));
        for name in names {
            let Some(list) = self.negatives.get(name) else {
                continue;
            };
            for negative in list {
                if negative.owner.name == package.name
                    || !self.satisfies(package, negative.relation, true)
                {
                    continue;
                }
                let verb = if negative.breaks {
                    "breaks"
                } else {
                    "conflicts with"
                };
                let tail = if negative.relation.name != package.name {
                    format!(", which {} provides", package.name)
                } else {
                    String::new()
                };
                return Some(format!(
                    "{}: {} {verb} {}{tail}",
                    me(),
                    self.label(&negative.owner.name),
                    negative.relation
                ));
            }
        }
        None
    }

    pub(super) fn install(&mut self, package: &'i Package, reason: Reason) -> Result<(), Failure> {
        self.attempts += 1;
        if self.attempts > MAX_ATTEMPTS {
            return Err(Failure::Abort);
        }
        if let Some(selected) = self.selected.get(package.name.as_str()) {
            if std::ptr::eq(selected.package, package) {
                return Ok(());
            }
            // Unreachable with candidates only; kept as a guard.
            return Err(Failure::Unsatisfiable(format!(
                "cannot install {} {}: {} is already selected",
                package.name, package.version, selected.package
            )));
        }
        if self.excluded.contains(package.name.as_str()) {
            let message = match &reason {
                Reason::Dependency { by, kind, relation } => {
                    let what = if *relation == package.name {
                        "it".to_string()
                    } else {
                        relation.clone()
                    };
                    format!(
                        "{} is excluded, but {} {} {what}",
                        package.name,
                        self.label(by),
                        kind.verb()
                    )
                }
                other => format!(
                    "{} is excluded, but it is {}",
                    package.name,
                    self.phrase(other)
                ),
            };
            return Err(Failure::Unsatisfiable(message));
        }
        if let Some(message) = self.conflict(package, &reason) {
            return Err(Failure::Unsatisfiable(message));
        }
        self.select(package, reason);
        self.install_dependencies(package)
    }

    pub(super) fn install_dependencies(&mut self, package: &'i Package) -> Result<(), Failure> {
        let mut fields: Vec<(DepKind, &'i Relations)> = vec![
            (DepKind::PreDepends, &package.pre_depends),
            (DepKind::Depends, &package.depends),
        ];
        if self.recommends {
            fields.push((DepKind::Recommends, &package.recommends));
        }
        for (kind, relations) in fields {
            for group in &relations.0 {
                let alternatives: Vec<&'i Relation> =
                    group.0.iter().filter(|r| self.applies(r)).collect();
                if alternatives.is_empty() || alternatives.iter().any(|r| self.is_satisfied(r)) {
                    continue;
                }
                let text = alternatives
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" | ");
                let (choices, dead_ends) = self.choices(&alternatives);
                let mark = self.log.len();
                let mut failures = Vec::new();
                let mut done = false;
                for (alternative, choice) in choices {
                    let reason = Reason::Dependency {
                        by: package.name.clone(),
                        kind,
                        relation: text.clone(),
                    };
                    match self.install(choice, reason) {
                        Ok(()) => {
                            done = true;
                            break;
                        }
                        Err(Failure::Abort) => return Err(Failure::Abort),
                        Err(Failure::Unsatisfiable(message)) => {
                            self.rollback(mark);
                            failures.push((alternative, message));
                        }
                    }
                }
                // Recommends are best effort, as in apt.
                if done || kind == DepKind::Recommends {
                    continue;
                }
                let head = format!("{} {} {text}", self.label(&package.name), kind.verb());
                let message = match (&dead_ends[..], &failures[..]) {
                    // The only possibility failed further down: that is
                    // the root cause.
                    ([], [(_, failure)]) => failure.clone(),
                    ([(_, why)], []) if alternatives.len() == 1 => format!("{head}, but {why}"),
                    _ => {
                        let mut items: Vec<(usize, String)> = dead_ends
                            .iter()
                            .map(|(i, why)| (*i, format!("{}: {why}", alternatives[*i])))
                            .chain(failures.iter().map(|(i, m)| (*i, clip(m).into_owned())))
                            .collect();
                        // In the order the alternatives are written.
                        items.sort_by_key(|(i, _)| *i);
                        let list: String = items
                            .iter()
                            .map(|(_, item)| format!("\n  - {}", item.replace('\n', "\n    ")))
                            .collect();
                        format!("{head}, but nothing can satisfy it:{list}")
                    }
                };
                return Err(Failure::Unsatisfiable(message));
            }
        }
        Ok(())
    }

    /// The packages that could satisfy one of `alternatives`, in the order
    /// to try them and with the index of the alternative they satisfy; and
    /// for each alternative nothing can satisfy, why.
    #[allow(clippy::type_complexity)]
    pub(super) fn choices(
        &self,
        alternatives: &[&'i Relation],
    ) -> (Vec<(usize, &'i Package)>, Vec<(usize, String)>) {
        let mut choices: Vec<(usize, &'i Package)> = Vec::new();
        let mut dead_ends = Vec::new();
        for (i, relation) in alternatives.iter().enumerate() {
            let real = self.index.candidate(&relation.name);
            let mut found: Vec<&'i Package> = real
                .filter(|c| self.satisfies(c, relation, false))
                .into_iter()
                .collect();
            let mut providers: Vec<&'i Package> = candidate_providers(self.index, &relation.name)
                .into_iter()
                .filter(|p| p.name != relation.name && self.satisfies(p, relation, false))
                .collect();
            // apt's CompareProviders, minus its cache-order fallback.
            providers.sort_by(|a, b| {
                (!a.essential, a.priority, &a.name).cmp(&(!b.essential, b.priority, &b.name))
            });
            found.extend(providers);
            if found.is_empty() {
                dead_ends.push((i, self.dead_end(relation, real)));
            }
            for package in found {
                if !choices.iter().any(|(_, c)| std::ptr::eq(*c, package)) {
                    choices.push((i, package));
                }
            }
        }
        (choices, dead_ends)
    }

    /// Why nothing in the index satisfies `relation`.
    pub(super) fn dead_end(&self, relation: &Relation, real: Option<&Package>) -> String {
        let name = &relation.name;
        if let Some(arch) = relation.arch_qualifier.as_deref()
            && !matches!(arch, "any" | "native")
            && arch != self.arch
        {
            return format!("the index only holds {} and all packages", self.arch);
        }
        if let Some(real) = real {
            if relation.arch_qualifier.as_deref() == Some("any")
                && real.multi_arch != MultiArch::Allowed
            {
                return format!(
                    "{} {} is not Multi-Arch: allowed, so it cannot satisfy {name}:any",
                    real.name, real.version
                );
            }
            return format!("the newest {name} is {} ({})", real.version, real.suite);
        }
        let providers = candidate_providers(self.index, name);
        if providers.is_empty() {
            return format!("{name} is not in the package index");
        }
        let list: Vec<String> = providers
            .iter()
            .map(|p| match p.provided_version(name).flatten() {
                Some(version) => format!("{} {} provides {name} (= {version})", p.name, p.version),
                None => {
                    if relation.arch_qualifier.as_deref() == Some("any")
                        && p.multi_arch != MultiArch::Allowed
                    {
                        format!("{} {} is not Multi-Arch: allowed", p.name, p.version)
                    } else {
                        format!("{} {} provides {name} without a version", p.name, p.version)
                    }
                }
            })
            .collect();
        format!(
            "{name} is a virtual package and no provider satisfies it: {}",
            list.join(", ")
        )
    }
}
