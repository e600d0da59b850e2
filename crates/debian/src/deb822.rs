//! deb822 control data (deb822(5)): Packages indexes, Release files and
//! dpkg's status database.
//!
//! Parsing borrows from the input: field names and values are slices of
//! it, so iterating over a whole Packages index allocates only one `Vec`
//! per paragraph.

use kiln_diag::quote;
use std::borrow::Cow;
use std::fmt;

/// A syntax error, with the 1-based line it was found on when it comes
/// from parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    line: Option<usize>,
    message: String,
}

impl Error {
    pub fn line(&self) -> Option<usize> {
        self.line
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

/// One `Name: value` field.
#[derive(Debug, Clone)]
pub struct Field<'a> {
    name: &'a str,
    value: Cow<'a, str>,
    /// 1-based line of the field name; 0 for fields added with
    /// [`Paragraph::set`].
    line: usize,
}

impl<'a> Field<'a> {
    /// The name as written; compare it case-insensitively.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The text after the colon without surrounding whitespace.
    /// Continuation lines are kept verbatim, joined by `\n` and still
    /// indented; the value starts with `\n` when the first line is empty
    /// (as in a Release file's `SHA256:`).
    pub fn value(&self) -> &str {
        &self.value
    }

    pub fn line(&self) -> Option<usize> {
        (self.line != 0).then_some(self.line)
    }

    /// The value's lines with surrounding blanks removed, skipping an empty
    /// first line: for `SHA256:` in a Release file, one `hash size path`
    /// entry per item. A ` .` continuation line comes out as `.`.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        let mut lines = self.value.split('\n');
        let first = lines.next().filter(|line| !line.is_empty());
        first
            .into_iter()
            .chain(lines.map(|line| line.trim_matches([' ', '\t'])))
    }
}

/// A paragraph (stanza): fields in their original order.
#[derive(Debug, Clone, Default)]
pub struct Paragraph<'a> {
    fields: Vec<Field<'a>>,
    line: usize,
}

impl<'a> Paragraph<'a> {
    pub fn new() -> Self {
        Self::default()
    }

    /// 1-based line of the first field, if the paragraph was parsed.
    pub fn line(&self) -> Option<usize> {
        (self.line != 0).then_some(self.line)
    }

    pub fn fields(&self) -> &[Field<'a>] {
        &self.fields
    }

    /// The field called `name`, ignoring ASCII case.
    pub fn field(&self, name: &str) -> Option<&Field<'a>> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The value of the field called `name`, ignoring ASCII case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.field(name).map(Field::value)
    }

    /// Sets a field, replacing one with the same name in place or appending
    /// it. `value` must be what [`Field::value`] would return for it:
    /// no surrounding whitespace, continuation lines already indented and
    /// not blank. Anything else would not read back the same.
    pub fn set(&mut self, name: &'a str, value: impl Into<Cow<'a, str>>) -> Result<(), Error> {
        let value = value.into();
        check_name(name).map_err(|message| Error {
            line: None,
            message,
        })?;
        check_value(&value).map_err(|message| Error {
            line: None,
            message: format!("field {}: {message}", quote(name)),
        })?;
        let field = Field {
            name,
            value,
            line: 0,
        };
        match self
            .fields
            .iter_mut()
            .find(|f| f.name.eq_ignore_ascii_case(name))
        {
            Some(existing) => *existing = field,
            None => self.fields.push(field),
        }
        Ok(())
    }
}

/// Renders the paragraph in deb822 form, one line per field line, ending
/// with a newline. Separate paragraphs with an empty line.
impl fmt::Display for Paragraph<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for field in &self.fields {
            let sep = if field.value.is_empty() || field.value.starts_with('\n') {
                ""
            } else {
                " "
            };
            writeln!(f, "{}:{sep}{}", field.name, field.value)?;
        }
        Ok(())
    }
}

/// Iterates over the paragraphs of deb822 text. Stops after the first
/// error.
pub fn paragraphs(text: &str) -> Paragraphs<'_> {
    Paragraphs {
        text,
        pos: 0,
        line: 0,
        failed: false,
    }
}

/// Iterator returned by [`paragraphs`].
#[derive(Debug, Clone)]
pub struct Paragraphs<'a> {
    text: &'a str,
    pos: usize,
    /// Number of the line most recently read.
    line: usize,
    failed: bool,
}

/// A field whose continuation lines may still follow.
struct OpenField<'a> {
    name: &'a str,
    line: usize,
    value_start: usize,
    value_end: usize,
    has_comments: bool,
}

impl<'a> Paragraphs<'a> {
    fn error(&self, message: String) -> Error {
        Error {
            line: Some(self.line),
            message,
        }
    }

    fn close(&self, open: OpenField<'a>, fields: &mut Vec<Field<'a>>) {
        let raw = &self.text[open.value_start..open.value_end];
        // Comment lines that only followed the field's last line are not
        // in `raw`; copy just when one sits between continuation lines.
        let value = if open.has_comments && raw.contains("\n#") {
            // The first segment is the value's own first line, even when it
            // starts with '#'; only later lines can be comments.
            let mut lines = raw.split('\n');
            let first = lines.next().unwrap_or_default();
            let kept: Vec<&str> = std::iter::once(first)
                .chain(lines.filter(|l| !l.starts_with('#')))
                .collect();
            Cow::Owned(kept.join("\n").trim_end().to_string())
        } else {
            Cow::Borrowed(raw.trim_end())
        };
        fields.push(Field {
            name: open.name,
            value,
            line: open.line,
        });
    }

    fn next_paragraph(&mut self) -> Result<Option<Paragraph<'a>>, Error> {
        let mut para = Paragraph::new();
        let mut open: Option<OpenField<'a>> = None;
        while self.pos < self.text.len() {
            let start = self.pos;
            let rest = &self.text[start..];
            let line = match rest.find('\n') {
                Some(n) => &rest[..n],
                None => rest,
            };
            self.pos = start + line.len() + 1;
            self.line += 1;

            // Blank lines separate paragraphs; whitespace-only and CRLF
            // blank lines count too, as most parsers accept them.
            if line.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
                if let Some(field) = open.take() {
                    self.close(field, &mut para.fields);
                }
                if para.fields.is_empty() {
                    continue;
                }
                return Ok(Some(para));
            }
            match line.as_bytes()[0] {
                // Comments may even sit between continuation lines
                // (deb822(5)); they never end a field.
                b'#' => {
                    if let Some(field) = &mut open {
                        field.has_comments = true;
                    }
                }
                b' ' | b'\t' => match &mut open {
                    Some(field) => field.value_end = start + line.len(),
                    None => {
                        return Err(self.error(
                            "continuation line (starting with whitespace) outside a field".into(),
                        ));
                    }
                },
                _ => {
                    if let Some(field) = open.take() {
                        self.close(field, &mut para.fields);
                    }
                    let Some(colon) = line.find(':') else {
                        return Err(self.error(format!(
                            "expected 'Name: value', found no ':' in {}",
                            quote(line)
                        )));
                    };
                    let name = &line[..colon];
                    check_name(name).map_err(|m| self.error(m))?;
                    if let Some(first) = para.field(name) {
                        return Err(self.error(format!(
                            "duplicate field {} (first at line {})",
                            quote(name),
                            first.line
                        )));
                    }
                    if para.fields.is_empty() {
                        para.line = self.line;
                    }
                    let after = &line[colon + 1..];
                    let blanks = after.len() - after.trim_start_matches([' ', '\t']).len();
                    open = Some(OpenField {
                        name,
                        line: self.line,
                        value_start: start + colon + 1 + blanks,
                        value_end: start + line.len(),
                        has_comments: false,
                    });
                }
            }
        }
        if let Some(field) = open.take() {
            self.close(field, &mut para.fields);
        }
        Ok((!para.fields.is_empty()).then_some(para))
    }
}

impl<'a> Iterator for Paragraphs<'a> {
    type Item = Result<Paragraph<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let result = self.next_paragraph();
        self.failed = result.is_err();
        result.transpose()
    }
}

/// deb822(5): printable US-ASCII except `:`, not starting with `#` or `-`.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty field name before ':'".into());
    }
    if name.starts_with(['#', '-']) {
        return Err(format!("field name {} starts with '#' or '-'", quote(name)));
    }
    if let Some(c) = name.chars().find(|&c| !matches!(c, '!'..='9' | ';'..='~')) {
        return Err(format!(
            "invalid character {c:?} in field name {}",
            quote(name)
        ));
    }
    Ok(())
}

fn check_value(value: &str) -> Result<(), String> {
    if value.starts_with([' ', '\t']) || value.ends_with(char::is_whitespace) {
        return Err("value has surrounding whitespace".into());
    }
    for line in value.split('\n').skip(1) {
        if !line.starts_with([' ', '\t']) {
            return Err(format!(
                "continuation line {} must start with a space or tab",
                quote(line)
            ));
        }
        if line.trim().is_empty() {
            return Err("blank continuation line (use ' .' for an empty line)".into());
        }
    }
    Ok(())
}

/// Keeps error messages short when a whole binary blob lands in a line.
#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<Paragraph<'_>> {
        paragraphs(text)
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn error(text: &str) -> String {
        match paragraphs(text).find_map(Result::err) {
            Some(e) => e.to_string(),
            None => panic!("{text:?} parsed"),
        }
    }

    const STATUS: &str = "\
Package: foo
Status: install ok installed
Depends: libc6 (>= 2.36),
 libbar
Description: short
 long line
 .
  verbatim

Package: bar
Version: 1.0
";

    #[test]
    fn parses_paragraphs_and_fields() {
        let paras = parse(STATUS);
        assert_eq!(paras.len(), 2);
        let foo = &paras[0];
        assert_eq!(foo.get("package"), Some("foo"));
        assert_eq!(foo.get("DEPENDS"), Some("libc6 (>= 2.36),\n libbar"));
        assert_eq!(
            foo.get("Description"),
            Some("short\n long line\n .\n  verbatim")
        );
        let lines: Vec<_> = foo.field("Description").unwrap().lines().collect();
        assert_eq!(lines, ["short", "long line", ".", "verbatim"]);
        assert_eq!(foo.field("Depends").unwrap().line(), Some(3));
        assert_eq!((foo.line(), paras[1].line()), (Some(1), Some(10)));
        assert_eq!(foo.fields()[1].name(), "Status");
        assert_eq!(paras[1].get("Missing"), None);
    }

    #[test]
    fn release_checksum_lines() {
        let text = "Origin: Debian\nSHA256:\n abc 12 main/Packages\n def 34 main/Release\n";
        let para = &parse(text)[0];
        assert_eq!(
            para.get("SHA256").unwrap(),
            "\n abc 12 main/Packages\n def 34 main/Release"
        );
        let lines: Vec<_> = para.field("sha256").unwrap().lines().collect();
        assert_eq!(lines, ["abc 12 main/Packages", "def 34 main/Release"]);
    }

    #[test]
    fn a_first_line_starting_with_hash_is_value_not_comment() {
        // found by fuzzing: the comment filter dropped "#x"
        let text = "A: #x\n y\n#c\n z\n";
        let paragraph = paragraphs(text).next().unwrap().unwrap();
        assert_eq!(paragraph.get("A"), Some("#x\n y\n z"));
    }

    #[test]
    fn separators_comments_and_whitespace() {
        let text = "\n\n# leading comment\nA: 1\n# between fields\nB:   two  \n \t \nC:\n x\n# inside\n y\n\n\n";
        let paras = parse(text);
        assert_eq!(paras.len(), 2);
        assert_eq!(paras[0].get("a"), Some("1"));
        assert_eq!(paras[0].get("b"), Some("two"));
        assert_eq!(paras[1].get("c"), Some("\n x\n y"));
        assert_eq!(parse("A:\n").first().unwrap().get("A"), Some(""));
        assert!(parse("").is_empty());
        assert!(parse("\n \n# only a comment\n").is_empty());
        assert_eq!(parse("A: 1\r\n\r\nB: 2").len(), 2);
    }

    #[test]
    fn errors_carry_line_numbers() {
        let cases = [
            (
                "A: 1\nA: 2\n",
                "line 2: duplicate field \"A\" (first at line 1)",
            ),
            ("A: 1\na: 2\n", "line 2: duplicate field \"a\""),
            (" x\nA: 1\n", "line 1: continuation line"),
            ("A: 1\n\n x\n", "line 3: continuation line"),
            ("A: 1\nnot a field\n", "line 2: expected 'Name: value'"),
            (": x\n", "line 1: empty field name"),
            ("-----BEGIN PGP: x\n", "starts with '#' or '-'"),
            ("Na me: x\n", "invalid character ' ' in field name"),
            ("Nämé: x\n", "invalid character 'ä'"),
        ];
        for (text, expected) in cases {
            let got = error(text);
            assert!(got.contains(expected), "{text:?}: {got}");
        }
        // The iterator stops at the first error.
        let mut it = paragraphs("A: 1\n\nbroken\n\nB: 2\n");
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }

    #[test]
    fn writer_round_trips() {
        let paras = parse(STATUS);
        let rendered: Vec<String> = paras.iter().map(ToString::to_string).collect();
        assert_eq!(rendered.join("\n"), STATUS);
        let text = "A:\nSHA256:\n abc 1 x\n";
        assert_eq!(parse(text)[0].to_string(), text);
    }

    #[test]
    fn set_replaces_in_place_and_validates() {
        let mut para = parse(STATUS).swap_remove(0);
        para.set("STATUS", "deinstall ok config-files").unwrap();
        para.set("Conffiles", "\n /etc/foo 0123").unwrap();
        let text = para.to_string();
        assert!(text.starts_with("Package: foo\nSTATUS: deinstall ok config-files\n"));
        assert!(text.ends_with("Conffiles:\n /etc/foo 0123\n"));
        let reparsed = parse(&text).swap_remove(0);
        assert_eq!(reparsed.get("conffiles"), Some("\n /etc/foo 0123"));

        for (name, value) in [
            ("Bad Name", "x"),
            ("#X", "x"),
            ("X", " x"),
            ("X", "x\n"),
            ("X", "x\ny"),
            ("X", "x\n \n y"),
        ] {
            assert!(para.set(name, value).is_err(), "{name:?}: {value:?}");
        }
    }

    #[test]
    fn never_panics_on_garbage() {
        let pieces = [
            "", "\n", " ", "\t", ":", "#", "A", "a", "é", "\r", "-", "\n\n",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    for d in pieces {
                        let text = format!("{a}{b}{c}{d}");
                        for para in paragraphs(&text).flatten() {
                            let _ = para.to_string();
                        }
                    }
                }
            }
        }
    }
}
