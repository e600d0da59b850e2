//! The dependency resolver: which packages a fresh image gets, computed the
//! way apt (with mmdebstrap's base sets) would install them on an empty
//! system, but deterministically and with an explanation for every choice.
//!
//! # Rules
//!
//! - **Candidates.** Only the newest version of each name (its
//!   [candidate](PackageIndex::candidate)) can be selected, whichever suite
//!   it comes from: apt's choice without pins, so bookworm-security beats
//!   bookworm. A dependency that the candidate does not satisfy is not
//!   satisfied by an older version either (apt does not downgrade to fit).
//! - **Base set.** [`Variant::Essential`]: every candidate with
//!   `Essential: yes`; [`Variant::Minbase`]: also `Priority: required`;
//!   [`Variant::Important`]: also `Priority: important`. Excluded names are
//!   left out of it (like debootstrap's `--exclude`); if something still
//!   needs them, that is an error naming the chain.
//! - **Requests.** Requested names must exist (an unknown one is an error
//!   with a did-you-mean). A purely virtual name is accepted when exactly
//!   one candidate provides it, as apt does ("Note, selecting …"), and is
//!   an error listing the providers otherwise. Requesting an excluded name
//!   is an error.
//! - **Order.** Like `apt-get install`, every base and requested package is
//!   marked first, then their dependencies are resolved one package at a
//!   time in name order, depth first: each dependency of a package is
//!   settled (recursively) before its next one. Pre-Depends come before
//!   Depends, then Recommends when asked for.
//! - **Satisfied already.** A dependency group (`a | b`) that a selected
//!   package satisfies needs nothing: alternatives, providers and the
//!   requested packages all count, so an alternative that is already
//!   selected wins over the first one.
//! - **Choosing.** Otherwise the alternatives are tried in the order
//!   written. For one alternative, the real package comes first, then
//!   the candidates that provide the name, ordered as apt's
//!   `CompareProviders` does: `Essential: yes` first, then by priority
//!   (required first), then — where apt falls back to its internal cache
//!   order — by name. The first choice that installs with all of its own
//!   dependencies wins; a choice that fails (conflict, exclusion,
//!   unsatisfiable dependency anywhere below it) is rolled back completely
//!   and the next one is tried. Recommends that cannot be installed are
//!   skipped, as apt does.
//! - **Versions and Provides.** `(op version)` is checked with dpkg's
//!   ordering. An unversioned `Provides` never satisfies a versioned
//!   dependency; `Provides: x (= v)` satisfies `x (>= u)` when v >= u
//!   (Policy 7.5).
//! - **Architectures.** An index holds one architecture and `all`.
//!   Relations with an architecture list (`[amd64]`, `[!linux-any]`) that
//!   does not match the index architecture are dropped; a group left empty
//!   is dropped. `name:any` is only satisfied by a package (or a
//!   `Provides` of a package) with `Multi-Arch: allowed`, as dpkg and apt
//!   do; `name:native` by anything in the index (everything is native or
//!   `all`); `name:ARCH` only when ARCH is the index architecture.
//! - **Conflicts and Breaks.** Both forbid coexistence: on a fresh system
//!   there is nothing to unpack out of order, so Breaks is as strong as
//!   Conflicts. A candidate is refused when one of its Conflicts/Breaks
//!   matches a selected package (by name and version, or through that
//!   package's Provides) or a selected package's Conflicts/Breaks matches
//!   it. A package never conflicts with itself, so the
//!   Provides/Conflicts/Replaces idiom works. Architecture qualifiers on
//!   Conflicts and Breaks are ignored (the conservative reading: they
//!   match more). Unlike apt, the resolver never un-selects a package to
//!   make room for a conflicting one; it tries the next alternative.
//! - **Determinism.** Maps are iterated in sorted order or not at all, and
//!   every tie is broken by name, so the same index and request give the
//!   same answer.
//! - **Bounded search.** Backtracking is capped at [`MAX_ATTEMPTS`]
//!   installation attempts; beyond that resolution fails instead of
//!   running for ever on an adversarial index.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use super::index::{MultiArch, Package, PackageIndex, Priority};
use super::relation::{Relation, Relations};
use kiln_diag::{did_you_mean, quote};

/// How many packages the search may try to install before giving up.
pub const MAX_ATTEMPTS: usize = 50_000;

/// What to install.
/// Which packages form the base set before the recipe's own, as
/// mmdebstrap's variants do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Essential: yes packages only.
    Essential,
    /// Essential plus Priority: required (mmdebstrap's minbase).
    Minbase,
    /// Minbase plus Priority: important.
    Important,
}

#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub variant: Variant,
    pub packages: &'a [String],
    pub exclude: &'a [String],
    pub recommends: bool,
}

/// The relation field that pulled a package in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepKind {
    PreDepends,
    Depends,
    Recommends,
}

impl DepKind {
    pub fn field(self) -> &'static str {
        match self {
            DepKind::PreDepends => "Pre-Depends",
            DepKind::Depends => "Depends",
            DepKind::Recommends => "Recommends",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            DepKind::PreDepends => "pre-depends on",
            DepKind::Depends => "depends on",
            DepKind::Recommends => "recommends",
        }
    }

    fn participle(self) -> &'static str {
        match self {
            DepKind::Recommends => "recommended by",
            _ => "needed by",
        }
    }
}

/// Why a package was selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Named in the request.
    Requested,
    /// The request named this virtual package, which only it provides.
    RequestedVirtual(String),
    /// Base set: `Essential: yes`.
    Essential,
    /// Base set (minbase and important): `Priority: required`.
    Required,
    /// Base set (important): `Priority: important`.
    Important,
    /// A dependency of another selected package.
    Dependency {
        by: String,
        kind: DepKind,
        /// The dependency group as it applies (architecture lists already
        /// evaluated), e.g. `default-mta | mail-transport-agent`.
        relation: String,
    },
}

/// Short form for reports: `requested`, `Essential: yes`,
/// `Depends of openssh-server: libssl3 (>= 3.0.9)`.
impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Requested => f.write_str("requested"),
            Reason::RequestedVirtual(name) => write!(f, "requested as {name}"),
            Reason::Essential => f.write_str("Essential: yes"),
            Reason::Required => f.write_str("Priority: required"),
            Reason::Important => f.write_str("Priority: important"),
            Reason::Dependency { by, kind, relation } => {
                write!(f, "{} of {by}: {relation}", kind.field())
            }
        }
    }
}

/// A selected package and why.
#[derive(Debug, Clone)]
pub struct Selected<'i> {
    pub package: &'i Package,
    pub reason: Reason,
}

/// Why a request cannot be installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    UnknownPackage {
        name: String,
        suggestion: Option<String>,
    },
    UnknownExclude {
        name: String,
        suggestion: Option<String>,
    },
    RequestedAndExcluded {
        name: String,
    },
    /// A requested virtual package with several providers.
    AmbiguousVirtual {
        name: String,
        providers: Vec<String>,
    },
    /// Dependencies, conflicts or exclusions make the request impossible;
    /// the message explains the chain. `request` is the requested name
    /// (as the request wrote it) whose installation failed, when it was
    /// one and not the base set.
    Unsatisfiable {
        message: String,
        request: Option<String>,
    },
    TooComplex {
        attempts: usize,
    },
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hint = |s: &Option<String>| match s {
            Some(best) => format!("; did you mean {}?", quote(best)),
            None => String::new(),
        };
        match self {
            ResolveError::UnknownPackage { name, suggestion } => write!(
                f,
                "package {} is not in the package index{}",
                quote(name),
                hint(suggestion)
            ),
            ResolveError::UnknownExclude { name, suggestion } => write!(
                f,
                "excluded package {} is not in the package index{}",
                quote(name),
                hint(suggestion)
            ),
            ResolveError::RequestedAndExcluded { name } => {
                write!(f, "package {} is both requested and excluded", quote(name))
            }
            ResolveError::AmbiguousVirtual { name, providers } => write!(
                f,
                "{} is a virtual package provided by {}; request one of them",
                quote(name),
                providers.join(", ")
            ),
            ResolveError::Unsatisfiable { message, .. } => f.write_str(message),
            ResolveError::TooComplex { attempts } => write!(
                f,
                "gave up resolving dependencies after {attempts} attempts; name more packages explicitly"
            ),
        }
    }
}

impl std::error::Error for ResolveError {}

impl ResolveError {
    /// The name in the request's `packages` this error is about, if any.
    pub fn requested_name(&self) -> Option<&str> {
        match self {
            ResolveError::UnknownPackage { name, .. }
            | ResolveError::AmbiguousVirtual { name, .. } => Some(name),
            ResolveError::Unsatisfiable { request, .. } => request.as_deref(),
            ResolveError::UnknownExclude { .. }
            | ResolveError::RequestedAndExcluded { .. }
            | ResolveError::TooComplex { .. } => None,
        }
    }

    /// The name in the request's `exclude` this error is about, if any.
    pub fn excluded_name(&self) -> Option<&str> {
        match self {
            ResolveError::UnknownExclude { name, .. }
            | ResolveError::RequestedAndExcluded { name } => Some(name),
            _ => None,
        }
    }
}

/// The requested name behind a top-level package, as the request wrote it;
/// `None` for the base set.
fn requested_as(package: &Package, reason: &Reason) -> Option<String> {
    match reason {
        Reason::Requested => Some(package.name.clone()),
        Reason::RequestedVirtual(name) => Some(name.clone()),
        _ => None,
    }
}

/// The packages to install, sorted by name.
pub fn resolve<'i>(
    index: &'i PackageIndex,
    request: &Request,
) -> Result<Vec<&'i Package>, ResolveError> {
    Ok(resolve_explained(index, request)?
        .into_iter()
        .map(|s| s.package)
        .collect())
}

/// The packages to install with the reason each was selected, sorted by
/// name.
pub fn resolve_explained<'i>(
    index: &'i PackageIndex,
    request: &Request,
) -> Result<Vec<Selected<'i>>, ResolveError> {
    let mut excluded = BTreeSet::new();
    for name in request.exclude {
        if index.candidate(name).is_none() {
            return Err(ResolveError::UnknownExclude {
                name: name.clone(),
                suggestion: suggest(index, name),
            });
        }
        excluded.insert(name.as_str());
    }

    // Everything apt would be given on the command line: requests first so
    // that they keep `Requested` as their reason.
    let mut top: BTreeMap<&'i str, (&'i Package, Reason)> = BTreeMap::new();
    let mut virtuals = Vec::new();
    for name in request.packages {
        if excluded.contains(name.as_str()) {
            return Err(ResolveError::RequestedAndExcluded { name: name.clone() });
        }
        match index.candidate(name) {
            Some(package) => {
                top.insert(&package.name, (package, Reason::Requested));
            }
            None => virtuals.push(name),
        }
    }
    for name in virtuals {
        let providers = candidate_providers(index, name);
        match providers[..] {
            [] => {
                return Err(ResolveError::UnknownPackage {
                    name: name.clone(),
                    suggestion: suggest(index, name),
                });
            }
            [provider] => {
                if excluded.contains(provider.name.as_str()) {
                    return Err(ResolveError::Unsatisfiable {
                        message: format!(
                            "{name} is requested, but its only provider {} is excluded",
                            provider.name
                        ),
                        request: Some(name.clone()),
                    });
                }
                top.entry(&provider.name)
                    .or_insert((provider, Reason::RequestedVirtual(name.clone())));
            }
            _ => {
                return Err(ResolveError::AmbiguousVirtual {
                    name: name.clone(),
                    providers: providers.iter().map(|p| p.name.clone()).collect(),
                });
            }
        }
    }
    for name in index.names() {
        let Some(package) = index.candidate(name) else {
            continue;
        };
        let reason = match (request.variant, package.essential, package.priority) {
            (_, true, _) => Reason::Essential,
            (Variant::Minbase | Variant::Important, _, Priority::Required) => Reason::Required,
            (Variant::Important, _, Priority::Important) => Reason::Important,
            _ => continue,
        };
        if !excluded.contains(name) {
            top.entry(&package.name).or_insert((package, reason));
        }
    }

    let mut resolver = Resolver {
        index,
        arch: index.arch(),
        excluded,
        recommends: request.recommends,
        selected: HashMap::new(),
        log: Vec::new(),
        provided: HashMap::new(),
        negatives: HashMap::new(),
        attempts: 0,
    };
    for (package, reason) in top.values() {
        if let Some(message) = resolver.conflict(package, reason) {
            return Err(ResolveError::Unsatisfiable {
                message,
                request: requested_as(package, reason),
            });
        }
        resolver.select(package, reason.clone());
    }
    for (package, reason) in top.values() {
        resolver
            .install_dependencies(package)
            .map_err(|f| match f {
                Failure::Unsatisfiable(message) => ResolveError::Unsatisfiable {
                    message,
                    request: requested_as(package, reason),
                },
                Failure::Abort => ResolveError::TooComplex {
                    attempts: resolver.attempts,
                },
            })?;
    }

    let mut selected: Vec<Selected<'i>> = resolver.selected.into_values().collect();
    selected.sort_by(|a, b| a.package.name.cmp(&b.package.name));
    Ok(selected)
}

/// The whole chain of reasons for `name`, e.g. `needed by libssl3, which
/// is needed by openssh-server, which is requested`; `None` when it is not
/// in `selected`.
pub fn why(selected: &[Selected<'_>], name: &str) -> Option<String> {
    let reasons: HashMap<&str, &Reason> = selected
        .iter()
        .map(|s| (s.package.name.as_str(), &s.reason))
        .collect();
    reasons
        .get(name)
        .map(|reason| phrase(reason, |n| reasons.get(n).copied()))
}

/// Describes `reason`, following `Dependency` links through `lookup`.
fn phrase<'a>(reason: &'a Reason, lookup: impl Fn(&str) -> Option<&'a Reason>) -> String {
    let mut out = String::new();
    let mut reason = reason;
    // Chains are acyclic (a package's reason names one selected before
    // it), but stay safe against a corrupt input.
    for _ in 0..64 {
        match reason {
            Reason::Requested => out.push_str("requested"),
            Reason::RequestedVirtual(name) => {
                out.push_str(&format!("requested as {name}, which only it provides"));
            }
            Reason::Essential => out.push_str("in the base set as Essential: yes"),
            Reason::Required => out.push_str("in the base set as Priority: required"),
            Reason::Important => out.push_str("in the base set as Priority: important"),
            Reason::Dependency { by, kind, .. } => {
                out.push_str(&format!("{} {by}", kind.participle()));
                if let Some(next) = lookup(by) {
                    out.push_str(", which is ");
                    reason = next;
                    continue;
                }
            }
        }
        return out;
    }
    out.push('…');
    out
}

/// At most [`CLIP_LINES`] lines of a nested failure: backtracking can
/// nest explanations exponentially deep otherwise.
fn clip(message: &str) -> std::borrow::Cow<'_, str> {
    match message.match_indices('\n').nth(CLIP_LINES - 1) {
        Some((end, _)) => format!("{}\n  …", &message[..end]).into(),
        None => message.into(),
    }
}

const CLIP_LINES: usize = 12;

fn suggest(index: &PackageIndex, name: &str) -> Option<String> {
    did_you_mean(name, index.names()).map(str::to_string)
}

/// Candidates (newest versions) providing `name`, one per package name.
fn candidate_providers<'i>(index: &'i PackageIndex, name: &str) -> Vec<&'i Package> {
    let mut providers: Vec<&Package> = index
        .providers(name)
        .into_iter()
        .map(|p| p.package)
        .filter(|p| is_candidate(index, p))
        .collect();
    providers.dedup_by(|a, b| a.name == b.name);
    providers
}

fn is_candidate(index: &PackageIndex, package: &Package) -> bool {
    index
        .candidate(&package.name)
        .is_some_and(|c| std::ptr::eq(c, package))
}

enum Failure {
    Unsatisfiable(String),
    Abort,
}

/// A Conflicts or Breaks relation of a selected package.
struct Negative<'i> {
    owner: &'i Package,
    relation: &'i Relation,
    breaks: bool,
}

struct Resolver<'i, 'r> {
    index: &'i PackageIndex,
    arch: &'i str,
    excluded: BTreeSet<&'r str>,
    recommends: bool,
    selected: HashMap<&'i str, Selected<'i>>,
    /// Selected packages in the order they were selected, for rollback.
    log: Vec<&'i Package>,
    /// Name (real or provided) to the selected packages answering to it.
    provided: HashMap<&'i str, Vec<&'i Package>>,
    /// Target name to the selected packages' Conflicts and Breaks on it.
    negatives: HashMap<&'i str, Vec<Negative<'i>>>,
    attempts: usize,
}

impl<'i> Resolver<'i, '_> {
    fn applies(&self, relation: &Relation) -> bool {
        relation
            .archs
            .as_ref()
            .is_none_or(|list| list.matches(self.arch))
    }

    fn select(&mut self, package: &'i Package, reason: Reason) {
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
    fn rollback(&mut self, mark: usize) {
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
    fn satisfies(&self, package: &Package, relation: &Relation, negative: bool) -> bool {
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

    fn is_satisfied(&self, relation: &Relation) -> bool {
        self.provided
            .get(relation.name.as_str())
            .is_some_and(|list| list.iter().any(|p| self.satisfies(p, relation, false)))
    }

    /// `name (why)` for a selected package.
    fn label(&self, name: &str) -> String {
        match self.selected.get(name) {
            Some(s) => format!("{name} ({})", self.phrase(&s.reason)),
            None => name.to_string(),
        }
    }

    fn phrase(&self, reason: &Reason) -> String {
        phrase(reason, |name| self.selected.get(name).map(|s| &s.reason))
    }

    /// A message when `package` cannot coexist with the selection.
    fn conflict(&self, package: &'i Package, reason: &Reason) -> Option<String> {
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

    fn install(&mut self, package: &'i Package, reason: Reason) -> Result<(), Failure> {
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

    fn install_dependencies(&mut self, package: &'i Package) -> Result<(), Failure> {
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
    fn choices(
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
    fn dead_end(&self, relation: &Relation, real: Option<&Package>) -> String {
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
