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

mod search;
use search::{Failure, Resolver, candidate_providers};

/// How many packages the search may try to install before giving up.
pub const MAX_ATTEMPTS: usize = 50_000;

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

/// What to install.
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
