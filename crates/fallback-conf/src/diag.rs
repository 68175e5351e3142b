//! Findings about a configuration file: where, how bad, and what to do.

use std::fmt;

use serde::Serialize;

/// A position in the configuration text, 1-based, columns counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Pos {
    /// Line number, starting at 1.
    pub line: u32,
    /// Column number, starting at 1, in characters (not bytes).
    pub column: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Turns byte offsets into line and column numbers.
#[derive(Debug)]
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(memchr_newlines(text));
        Self { text, starts }
    }

    pub(crate) fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        Pos {
            line: u32::try_from(line + 1).unwrap_or(u32::MAX),
            column: u32::try_from(column + 1).unwrap_or(u32::MAX),
        }
    }
}

fn memchr_newlines(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.bytes()
        .enumerate()
        .filter(|&(_, b)| b == b'\n')
        .map(|(i, _)| i + 1)
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Said for completeness: a known setting that has no meaning over HTTP.
    Note,
    /// Tolerated, but probably not what the operator meant.
    Warning,
    /// The configuration cannot be used as written.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $text:literal, $sev:ident; )*) => {
        /// Stable identifier of a kind of finding; tests and scripts match on it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[non_exhaustive]
        pub enum Code {
            $( $(#[$doc])* #[serde(rename = $text)] $variant, )*
        }

        impl Code {
            /// The code as written in reports, for example `invalid-port`.
            pub fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $text, )* }
            }

            /// How serious a finding with this code is.
            pub fn severity(self) -> Severity {
                match self { $( Code::$variant => Severity::$sev, )* }
            }

            /// Every code, for documentation and tests.
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];
        }
    };
}

codes! {
    /// The text is not well-formed XML.
    XmlSyntax = "xml-syntax", Error;
    /// An element is opened and never closed.
    UnclosedTag = "unclosed-tag", Error;
    /// A closing tag does not match the open element.
    MismatchedTag = "mismatched-tag", Error;
    /// A DOCTYPE or entity declaration: refused, so no entity expansion or XXE can happen.
    DoctypeRefused = "doctype-refused", Error;
    /// An entity reference other than the five XML ones or a character reference.
    UnknownEntity = "unknown-entity", Error;
    /// The file is not UTF-8.
    NotUtf8 = "not-utf8", Error;
    /// The file is larger than the parser accepts.
    TooLarge = "too-large", Error;
    /// Elements nest deeper than the parser accepts.
    TooDeep = "too-deep", Error;
    /// The root element is not `<CONF>`.
    NotAsperaConf = "not-aspera-conf", Error;
    /// A port that is not a number in 1..=65535.
    InvalidPort = "invalid-port", Error;
    /// A boolean that is not true/false/yes/no/1/0.
    InvalidBool = "invalid-bool", Error;
    /// A number that is not an unsigned integer in range.
    InvalidInteger = "invalid-integer", Error;
    /// A value outside the element's list of allowed values.
    InvalidValue = "invalid-value", Error;
    /// The same single-valued element given twice in one section.
    DuplicateElement = "duplicate-element", Error;
    /// Two users, or two groups, with the same name.
    DuplicateName = "duplicate-name", Error;
    /// A user or group section without `<name>`.
    MissingName = "missing-name", Error;
    /// Neither `enable_http` nor `enable_https` is true.
    NoListener = "no-listener", Error;
    /// HTTP and HTTPS enabled on the same port.
    PortConflict = "port-conflict", Error;
    /// `cert_file` without `key_file`, or the reverse.
    CertWithoutKey = "cert-without-key", Error;
    /// A transfer direction requires a token but no `encryption_key` applies.
    TokenKeyMissing = "token-key-missing", Error;
    /// No docroot applies: transfers would be refused.
    DocrootMissing = "docroot-missing", Error;
    /// A docroot that is not an absolute path.
    DocrootNotAbsolute = "docroot-not-absolute", Error;
    /// An `s3://` docroot that cannot be read (its message says which part).
    DocrootUri = "docroot-uri", Error;
    /// A docroot that does not exist (or is not a directory) on the host that checks.
    DocrootNotFound = "docroot-not-found", Error;
    /// A docroot with `$(name)` or `$(home)` that cannot be made for a user: a name
    /// that cannot be a directory name, or no home directory known.
    DocrootSubstitution = "docroot-substitution", Error;
    /// An unknown element where security settings live (authorization, encryption,
    /// file system access), or a misspelt section that holds them.
    UnknownSecurityElement = "unknown-security-element", Error;
    /// The TLS certificate or key cannot be read or used.
    TlsUnusable = "tls-unusable", Error;
    /// An `s3://` docroot's bucket cannot be used from this host: unreachable,
    /// credentials refused, no such bucket, or not writable.
    BucketUnusable = "bucket-unusable", Error;
    /// A listening port cannot be bound on this host (checked by the daemon; a running
    /// fallbackd holds its own).
    PortUnavailable = "port-unavailable", Warning;
    /// An element this implementation does not know; ignored.
    UnknownElement = "unknown-element", Warning;
    /// An attribute this implementation does not know; ignored.
    UnknownAttribute = "unknown-attribute", Warning;
    /// `<WEB>` advertises ports that `<http_server>` does not listen on (direct mode).
    WebPortMismatch = "web-port-mismatch", Warning;
    /// `<http_server>` is enabled but `<WEB HttpFallback>` does not advertise it.
    FallbackNotAdvertised = "fallback-not-advertised", Warning;
    /// A token secret shorter than 20 characters.
    WeakTokenKey = "weak-token-key", Warning;
    /// Only the first `<path>` of a section is used as the docroot.
    ExtraDocroot = "extra-docroot", Warning;
    /// A setting that has no effect where it is written.
    Ineffective = "ineffective", Warning;
    /// A setting of the real product that would change a transfer and that HTTP
    /// fallback does not apply; the message says why.
    NotApplied = "not-applied", Warning;
    /// What an encrypting user meets in this deployment (proxy or direct mode).
    ModeNotice = "mode", Warning;
    /// A setting of the real product with no meaning over HTTP (FASP tuning, notes).
    NoEffectOverHttp = "no-effect-over-http", Note;
    /// An `s3://` docroot's bucket was checked from this host and is usable.
    BucketChecked = "bucket-checked", Note;
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding: a code, a message in words, where it is, and the element path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// What kind of finding this is.
    pub code: Code,
    /// Severity of the finding (derived from the code).
    pub severity: Severity,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
    /// Where in the text; `None` for findings about something absent from the file.
    pub pos: Option<Pos>,
    /// The element path, for example `/CONF/http_server/http_port`.
    pub path: String,
}

impl Diagnostic {
    /// A finding; its severity is the code's.
    pub fn new(
        code: Code,
        pos: Option<Pos>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            code,
            severity: code.severity(),
            message: message.into(),
            pos,
            path: path.into(),
        }
    }

    /// Whether this finding makes the configuration unusable.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// `12:5: error[invalid-port]: message (at /CONF/http_server/http_port)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(pos) = self.pos {
            write!(f, "{pos}: ")?;
        }
        write!(f, "{}[{}]: {}", self.severity, self.code, self.message)?;
        if !self.path.is_empty() {
            write!(f, " (at {})", self.path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_not_bytes() {
        let idx = LineIndex::new("ab\ncé<x>\n\nz");
        assert_eq!(idx.pos(0), Pos { line: 1, column: 1 });
        assert_eq!(idx.pos(3), Pos { line: 2, column: 1 });
        // "cé" is 3 bytes, 2 characters: '<' is column 3.
        assert_eq!(idx.pos(6), Pos { line: 2, column: 3 });
        assert_eq!(idx.pos(10), Pos { line: 3, column: 1 });
        assert_eq!(idx.pos(11), Pos { line: 4, column: 1 });
        assert_eq!(idx.pos(999), Pos { line: 4, column: 2 });
    }

    #[test]
    fn codes_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "duplicate code {c}");
        }
    }
}
