//! Package relation fields (Debian Policy 7.1): Depends, Pre-Depends,
//! Recommends, Suggests, Conflicts, Breaks, Provides, Replaces, ...
//!
//! The syntax is the same for every field, so the parser does not check
//! field-specific rules (such as Provides allowing only `=`).

use kiln_diag::quote;
use std::fmt;
use std::str::FromStr;

use super::arch;
use super::version::Version;

/// A version relation operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `<<`
    Lt,
    /// `<=`, or the obsolete `<`
    Le,
    /// `=`
    Eq,
    /// `>=`, or the obsolete `>`
    Ge,
    /// `>>`
    Gt,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        }
    }

    /// Whether `version OP bound` holds: `Op::Ge.matches(2.0, 1.0)` is true.
    pub fn matches(self, version: &Version, bound: &Version) -> bool {
        let ord = version.cmp(bound);
        match self {
            Op::Lt => ord.is_lt(),
            Op::Le => ord.is_le(),
            Op::Eq => ord.is_eq(),
            Op::Ge => ord.is_ge(),
            Op::Gt => ord.is_gt(),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An architecture restriction such as `[amd64 arm64]` or
/// `[!hurd-any !kfreebsd-any]`. Policy forbids mixing negated and plain
/// entries, so one flag covers the whole list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArchList {
    pub negated: bool,
    /// Architecture names or wildcards, without `!`.
    pub archs: Vec<String>,
}

impl ArchList {
    /// Whether the relation applies on `arch`: a plain list must match it,
    /// a negated list must not.
    pub fn matches(&self, arch: &str) -> bool {
        let listed = self
            .archs
            .iter()
            .any(|pattern| arch::matches(arch, pattern));
        listed != self.negated
    }
}

/// One package reference, e.g. `libc6:amd64 (>= 2.36) [linux-any]`.
/// Build profile restrictions (`<!nocheck>`) are checked but not kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Relation {
    /// The package name as written.
    pub name: String,
    /// `any`, `native` or an architecture name, from `name:qualifier`.
    pub arch_qualifier: Option<String>,
    pub constraint: Option<(Op, Version)>,
    pub archs: Option<ArchList>,
}

/// Alternatives separated by `|`: one of them must hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Alternatives(pub Vec<Relation>);

/// A whole relation field: groups separated by `,`, all of which must hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Relations(pub Vec<Alternatives>);

impl Relations {
    /// Parses a field's value; `field` (e.g. `Depends`) prefixes errors.
    pub fn parse_field(field: &str, value: &str) -> Result<Self, RelationError> {
        Parser { s: value, pos: 0 }
            .relations()
            .map_err(|e| e.locate(Some(field), value))
    }
}

impl FromStr for Relations {
    type Err = RelationError;

    fn from_str(s: &str) -> Result<Self, RelationError> {
        Parser { s, pos: 0 }
            .relations()
            .map_err(|e| e.locate(None, s))
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(qualifier) = &self.arch_qualifier {
            write!(f, ":{qualifier}")?;
        }
        if let Some((op, version)) = &self.constraint {
            write!(f, " ({op} {version})")?;
        }
        if let Some(list) = &self.archs {
            let bang = if list.negated { "!" } else { "" };
            f.write_str(" [")?;
            for (i, arch) in list.archs.iter().enumerate() {
                let sep = if i == 0 { "" } else { " " };
                write!(f, "{sep}{bang}{arch}")?;
            }
            f.write_str("]")?;
        }
        Ok(())
    }
}

impl fmt::Display for Alternatives {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_joined(f, &self.0, " | ")
    }
}

impl fmt::Display for Relations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_joined(f, &self.0, ", ")
    }
}

fn write_joined<T: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    items: &[T],
    sep: &str,
) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

/// A syntax error in a relation field, e.g.
/// `Depends: expected ')' after version, found ',' at column 23`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationError {
    message: String,
}

impl fmt::Display for RelationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RelationError {}

/// An error at a byte offset, before it is turned into line and column.
struct Located {
    offset: usize,
    message: String,
}

impl Located {
    fn locate(self, field: Option<&str>, value: &str) -> RelationError {
        let before = &value[..self.offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        let prefix = field.map(|f| format!("{f}: ")).unwrap_or_default();
        let place = if value.contains('\n') {
            let line = before.matches('\n').count() + 1;
            format!("line {line}, column {column}")
        } else {
            format!("column {column}")
        };
        RelationError {
            message: format!("{prefix}{} at {place}", self.message),
        }
    }
}

/// Characters that end a package or architecture name.
fn is_delimiter(b: u8) -> bool {
    b.is_ascii_whitespace() || b":(),|[]<>!".contains(&b)
}

struct Parser<'s> {
    s: &'s str,
    /// Byte offset; always on a char boundary because tokens end at ASCII.
    pos: usize,
}

type PResult<T> = Result<T, Located>;

impl<'s> Parser<'s> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// Consumes bytes up to the first one for which `stop` holds.
    fn token(&mut self, stop: impl Fn(u8) -> bool) -> &'s str {
        let start = self.pos;
        while self.peek().is_some_and(|b| !stop(b)) {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    fn found(&self) -> String {
        match self.s[self.pos..].chars().next() {
            Some(c) => format!("found {c:?}"),
            None => "found end of field".into(),
        }
    }

    fn error(&self, offset: usize, message: String) -> Located {
        Located { offset, message }
    }

    fn relations(&mut self) -> PResult<Relations> {
        let mut groups = Vec::new();
        self.skip_space();
        if self.peek().is_none() {
            return Ok(Relations(groups));
        }
        let mut alternatives = vec![self.relation()?];
        loop {
            match self.peek() {
                Some(b'|') => {
                    self.pos += 1;
                    alternatives.push(self.relation()?);
                }
                Some(b',') => {
                    self.pos += 1;
                    groups.push(Alternatives(std::mem::take(&mut alternatives)));
                    alternatives.push(self.relation()?);
                }
                None => {
                    groups.push(Alternatives(alternatives));
                    return Ok(Relations(groups));
                }
                Some(_) => {
                    let name = alternatives.last().map_or("", |r| r.name.as_str());
                    return Err(self.error(
                        self.pos,
                        format!(
                            "expected ',' or '|' after {}, {}",
                            quote(name),
                            self.found()
                        ),
                    ));
                }
            }
        }
    }

    /// One relation, including the whitespace after it.
    fn relation(&mut self) -> PResult<Relation> {
        self.skip_space();
        let start = self.pos;
        let name = self.token(is_delimiter);
        if name.is_empty() {
            return Err(self.error(start, format!("expected a package name, {}", self.found())));
        }
        check_package_name(name).map_err(|m| self.error(start, m))?;
        let arch_qualifier = if self.eat(b':') {
            Some(self.arch_name("after ':'")?.to_string())
        } else {
            None
        };
        self.skip_space();
        let constraint = if self.eat(b'(') {
            Some(self.constraint()?)
        } else {
            None
        };
        self.skip_space();
        let archs = if self.eat(b'[') {
            Some(self.arch_list()?)
        } else {
            None
        };
        self.skip_space();
        while self.eat(b'<') {
            self.profiles()?;
            self.skip_space();
        }
        Ok(Relation {
            name: name.to_string(),
            arch_qualifier,
            constraint,
            archs,
        })
    }

    /// The inside of `(op version)`, after the `(`.
    fn constraint(&mut self) -> PResult<(Op, Version)> {
        self.skip_space();
        let at = self.pos;
        let next = self.s.as_bytes().get(at + 1).copied();
        let (op, len) = match (self.peek(), next) {
            (Some(b'<'), Some(b'<')) => (Op::Lt, 2),
            (Some(b'<'), Some(b'=')) => (Op::Le, 2),
            (Some(b'>'), Some(b'>')) => (Op::Gt, 2),
            (Some(b'>'), Some(b'=')) => (Op::Ge, 2),
            (Some(b'<'), Some(b'>')) | (Some(b'>'), Some(b'<')) => {
                return Err(self.error(at, format!("invalid operator '{}'", &self.s[at..at + 2])));
            }
            // Obsolete forms; dpkg reads them as `<=` and `>=`.
            (Some(b'<'), _) => (Op::Le, 1),
            (Some(b'>'), _) => (Op::Ge, 1),
            (Some(b'='), _) => (Op::Eq, 1),
            _ => {
                return Err(self.error(
                    at,
                    format!(
                        "expected an operator (<<, <=, =, >=, >>) after '(', {}",
                        self.found()
                    ),
                ));
            }
        };
        self.pos += len;
        let written = &self.s[at..self.pos];
        self.skip_space();
        let start = self.pos;
        // Stopping at any delimiter turns `(>= 1.0, b` into "expected ')'"
        // rather than a complaint about a ',' in the version.
        let text = self.token(|b| b.is_ascii_whitespace() || b"(),|[]<>".contains(&b));
        if text.is_empty() {
            return Err(self.error(
                start,
                format!(
                    "expected a version after {}, {}",
                    quote(written),
                    self.found()
                ),
            ));
        }
        let version = text
            .parse::<Version>()
            .map_err(|e| self.error(start, e.to_string()))?;
        self.skip_space();
        if !self.eat(b')') {
            return Err(self.error(
                self.pos,
                format!("expected ')' after version, {}", self.found()),
            ));
        }
        Ok((op, version))
    }

    /// The inside of `[arch ...]`, after the `[`.
    fn arch_list(&mut self) -> PResult<ArchList> {
        let open = self.pos - 1;
        let mut archs = Vec::new();
        let mut negated = None;
        loop {
            self.skip_space();
            match self.peek() {
                Some(b']') => break,
                None => {
                    return Err(self.error(
                        self.pos,
                        "expected ']' to close the architecture list, found end of field".into(),
                    ));
                }
                _ => {}
            }
            let at = self.pos;
            let bang = self.eat(b'!');
            let name = self.arch_name("in '[...]'")?;
            if *negated.get_or_insert(bang) != bang {
                return Err(self.error(
                    at,
                    "architecture list mixes negated and plain entries".into(),
                ));
            }
            archs.push(name.to_string());
        }
        self.pos += 1;
        match negated {
            Some(negated) => Ok(ArchList { negated, archs }),
            None => Err(self.error(open, "empty architecture list".into())),
        }
    }

    /// An architecture name or wildcard; dpkg allows a letter or digit,
    /// then letters, digits and `-`.
    fn arch_name(&mut self, context: &str) -> PResult<&'s str> {
        let at = self.pos;
        let name = self.token(is_delimiter);
        if name.is_empty() {
            let message = format!("expected an architecture name {context}, {}", self.found());
            return Err(self.error(at, message));
        }
        let valid = name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid {
            let message = format!("invalid architecture name {} {context}", quote(name));
            return Err(self.error(at, message));
        }
        Ok(name)
    }

    /// A build profile restriction `<!nocheck cross>`, after the `<`.
    /// Binary relations ignore these, so they are only checked.
    fn profiles(&mut self) -> PResult<()> {
        let open = self.pos - 1;
        let mut terms = 0;
        loop {
            self.skip_space();
            match self.peek() {
                Some(b'>') => break,
                None => {
                    return Err(self.error(
                        self.pos,
                        "expected '>' to close the build profile restriction, found end of field"
                            .into(),
                    ));
                }
                _ => {}
            }
            self.eat(b'!');
            let at = self.pos;
            let name = self.token(is_delimiter);
            if name.is_empty() {
                let message = format!("expected a build profile name, {}", self.found());
                return Err(self.error(at, message));
            }
            let valid = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b);
            if !name.bytes().all(valid) {
                let message = format!("invalid build profile name {}", quote(name));
                return Err(self.error(at, message));
            }
            terms += 1;
        }
        self.pos += 1;
        if terms == 0 {
            return Err(self.error(open, "empty build profile restriction '<>'".into()));
        }
        Ok(())
    }
}

/// dpkg's rule (`pkg_name_is_illegal`), which is looser than Policy's: it
/// also allows upper case and `_`.
fn check_package_name(name: &str) -> Result<(), String> {
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "package name {} must start with a letter or digit",
            quote(name)
        ));
    }
    match name
        .chars()
        .find(|&c| !c.is_ascii_alphanumeric() && !"-+._".contains(c))
    {
        Some(c) => Err(format!(
            "invalid character {c:?} in package name {}",
            quote(name)
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Relations {
        Relations::parse_field("Depends", s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn error(s: &str) -> String {
        match Relations::parse_field("Depends", s) {
            Ok(r) => panic!("{s:?} parsed as {r}"),
            Err(e) => e.to_string(),
        }
    }

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn parses_groups_alternatives_and_constraints() {
        let r =
            parse("libc6 (>= 2.36), default-mta | mail-transport-agent, python3:any (<< 3.12~)");
        assert_eq!(r.0.len(), 3);
        let libc = &r.0[0].0[0];
        assert_eq!(libc.name, "libc6");
        assert_eq!(libc.constraint, Some((Op::Ge, v("2.36"))));
        assert_eq!(r.0[1].0.len(), 2);
        assert_eq!(r.0[1].0[1].name, "mail-transport-agent");
        let python = &r.0[2].0[0];
        assert_eq!(python.arch_qualifier.as_deref(), Some("any"));
        assert_eq!(python.constraint, Some((Op::Lt, v("3.12~"))));
    }

    #[test]
    fn operators_including_obsolete_ones() {
        for (text, op) in [
            ("<<", Op::Lt),
            ("<=", Op::Le),
            ("<", Op::Le),
            ("=", Op::Eq),
            (">=", Op::Ge),
            (">", Op::Ge),
            (">>", Op::Gt),
        ] {
            let r = parse(&format!("a ({text} 1)"));
            assert_eq!(r.0[0].0[0].constraint, Some((op, v("1"))), "{text}");
        }
        // No space needed between operator and version.
        assert_eq!(parse("a (>=1:2)").to_string(), "a (>= 1:2)");
    }

    #[test]
    fn op_matches() {
        let (one, two) = (v("1.0"), v("2.0"));
        assert!(Op::Ge.matches(&two, &one));
        assert!(!Op::Ge.matches(&one, &two));
        assert!(Op::Le.matches(&one, &one));
        assert!(Op::Lt.matches(&v("1.0~rc1"), &one));
        assert!(Op::Eq.matches(&v("1.0-0"), &one));
        assert!(Op::Gt.matches(&v("1:0"), &two));
        assert!(!Op::Gt.matches(&one, &one));
    }

    #[test]
    fn arch_lists_and_profiles() {
        let r =
            parse("libfoo [amd64 arm64] <!nocheck> <stage1 cross>, bar [!hurd-any !kfreebsd-any]");
        let foo = r.0[0].0[0].archs.as_ref().unwrap();
        assert!(!foo.negated);
        assert!(foo.matches("amd64") && foo.matches("arm64") && !foo.matches("i386"));
        let bar = r.0[1].0[0].archs.as_ref().unwrap();
        assert!(bar.negated);
        assert!(bar.matches("amd64") && !bar.matches("hurd-i386"));
        assert_eq!(
            r.to_string(),
            "libfoo [amd64 arm64], bar [!hurd-any !kfreebsd-any]"
        );
        let wild = parse("x [linux-any]");
        assert!(wild.0[0].0[0].archs.as_ref().unwrap().matches("armhf"));
    }

    #[test]
    fn whitespace_and_folding_are_lenient() {
        let r = parse("\n  a\t(\n>=\t1 )\n [ amd64 ]  <!nocheck>,\n b|c:native  ,d ");
        assert_eq!(r.to_string(), "a (>= 1) [amd64], b | c:native, d");
        assert_eq!(parse("").0.len(), 0);
        assert_eq!(parse(" \n ").0.len(), 0);
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "a",
            "a:amd64 (= 1:2.0-1) [!i386], b | c (<< 2~)",
            "x (<= 0.1), y:any, z [any-arm64 linux-any]",
        ] {
            let parsed = parse(text);
            assert_eq!(parsed.to_string(), text);
            assert_eq!(parse(&parsed.to_string()), parsed);
        }
    }

    #[test]
    fn clear_errors_with_columns() {
        let cases = [
            (
                "a (>= 1.0, b",
                "Depends: expected ')' after version, found ',' at column 10",
            ),
            (
                "a (>= 1.0",
                "expected ')' after version, found end of field at column 10",
            ),
            (
                "a (1.0)",
                "expected an operator (<<, <=, =, >=, >>) after '(', found '1' at column 4",
            ),
            ("a (>< 1)", "invalid operator '><' at column 4"),
            (
                "a (>=)",
                "expected a version after \">=\", found ')' at column 6",
            ),
            (
                "a (>= 1_0)",
                "invalid version \"1_0\": invalid character '_' in upstream version at column 7",
            ),
            ("a, , b", "expected a package name, found ',' at column 4"),
            (
                "a,",
                "expected a package name, found end of field at column 3",
            ),
            (
                "a b",
                "expected ',' or '|' after \"a\", found 'b' at column 3",
            ),
            (
                "a:",
                "expected an architecture name after ':', found end of field at column 3",
            ),
            (
                "a:am_d64",
                "invalid architecture name \"am_d64\" after ':' at column 3",
            ),
            (
                "-a",
                "package name \"-a\" must start with a letter or digit at column 1",
            ),
            (
                "a@b",
                "invalid character '@' in package name \"a@b\" at column 1",
            ),
            (
                "a [amd64",
                "expected ']' to close the architecture list, found end of field at column 9",
            ),
            ("a []", "empty architecture list at column 3"),
            (
                "a [amd64 !i386]",
                "architecture list mixes negated and plain entries at column 10",
            ),
            (
                "a [amd64,i386]",
                "expected an architecture name in '[...]', found ',' at column 9",
            ),
            ("a <>", "empty build profile restriction '<>' at column 3"),
            (
                "a <nocheck",
                "expected '>' to close the build profile restriction",
            ),
            (
                "a <NoCheck>",
                "invalid build profile name \"NoCheck\" at column 4",
            ),
            (
                "a (>= 1) (>= 2)",
                "expected ',' or '|' after \"a\", found '(' at column 10",
            ),
            (
                "a,\n b (>= 1",
                "expected ')' after version, found end of field at line 2, column 9",
            ),
            (
                "aé",
                "invalid character 'é' in package name \"aé\" at column 1",
            ),
        ];
        for (input, expected) in cases {
            let got = error(input);
            assert!(
                got.contains(expected),
                "{input:?}:\n  got      {got}\n  expected {expected}"
            );
        }
        let err = "a (".parse::<Relations>().unwrap_err().to_string();
        assert!(err.starts_with("expected an operator"), "{err}");
    }

    #[test]
    fn never_panics_on_garbage() {
        let pieces = [
            "", "a", " ", "\n", ",", "|", "(", ")", "[", "]", "<", ">", "=", "!", ":", "1", "~",
            "é",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    for d in pieces {
                        let s = format!("a{a}{b}{c}{d}");
                        if let Ok(r) = s.parse::<Relations>() {
                            assert_eq!(parse(&r.to_string()), r, "{s:?}");
                        }
                    }
                }
            }
        }
    }
}
