//! Reads aspera.conf the way HTTP fallback needs it.
//!
//! Parsing happens in two stages: the XML text becomes an element tree with positions
//! (DOCTYPE refused, no entity expansion, bounded size and depth), then the tree becomes
//! a typed [`Document`]: `<http_server>`, the Connect Server `<WEB>` element, `<default>`,
//! and the users and groups of `<aaa><realms><realm>`. Every problem is a [`Diagnostic`]
//! with a [`Code`], a message, a line:column and an element path; unknown elements are
//! warnings, never errors, since real files carry hundreds of settings fallback does not
//! use.
//!
//! On top of the document, [`Config::user`] answers "the effective settings of user U"
//! with precedence user > groups (lower `<precedence>` first) > `<default>` > built-in
//! default, and says for each value where it came from ([`Origin`]).
//!
//! ```
//! use fallback_conf::{Config, Origin, TransferAuth};
//!
//! let conf = Config::parse(r#"
//! <CONF version="2">
//!   <http_server><enable_https>true</enable_https></http_server>
//!   <default>
//!     <authorization>
//!       <transfer><in><value>token</value></in><out><value>token</value></out></transfer>
//!       <token><encryption_key>change-me-to-twenty-random-chars</encryption_key></token>
//!     </authorization>
//!     <file_system><access><paths><path><absolute>/srv/data</absolute></path></paths></access></file_system>
//!   </default>
//!   <aaa><realms><realm><users><user>
//!     <name>alice</name>
//!     <authorization><transfer><out><value>allow</value></out></transfer></authorization>
//!   </user></users></realm></realms></aaa>
//! </CONF>"#)?;
//! assert!(!conf.has_errors(), "{:?}", conf.diagnostics());
//!
//! let alice = conf.user("alice", &[]);
//! assert_eq!(alice.transfer_out.value, TransferAuth::Allow);
//! assert!(matches!(alice.transfer_out.origin, Origin::User { .. }));
//! assert_eq!(alice.transfer_in.value, TransferAuth::Token);
//! assert!(matches!(alice.transfer_in.origin, Origin::Default { .. }));
//! assert_eq!(conf.server().https_port.value, 8443); // built-in default
//! # Ok::<(), fallback_conf::Error>(())
//! ```

#![warn(missing_docs)]

mod account;
mod diag;
mod docroot;
mod host;
mod model;
mod parse;
mod resolve;
mod validate;
mod write;
mod xml;

use std::path::{Path, PathBuf};

pub use account::Account;
pub use diag::{Code, Diagnostic, Pos, Severity};
pub use docroot::{AWS_HOST, Docroot, S3Credentials, S3Root, STORAGE_CLASSES};
pub use model::{
    Cipher, Document, FileMode, FilenameHash, Group, HttpServer, Layer, Overwrite, PeerDocroot,
    RetiredKey, Secret, TokenCipher, TransferAuth, UnknownKeyword, User, Web,
};
pub use resolve::{Mode, Origin, ServerSettings, Sourced, UserSettings, WebSettings, mode_of};
pub use validate::MIN_TOKEN_KEY_CHARS;
pub use xml::{MAX_BYTES, MAX_DEPTH};

/// Why a configuration could not be read or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a usable XML document (malformed, DOCTYPE, too large, not `<CONF>`).
    /// Nothing else can be said about it until this is fixed.
    #[error("{0}")]
    Syntax(Diagnostic),
    /// The document parsed but has errors (listed, warnings included); returned by
    /// [`Config::into_checked`].
    #[error("{} error(s) in the configuration, first: {}", .0.iter().filter(|d| d.is_error()).count(), .0.iter().find(|d| d.is_error()).map_or_else(String::new, ToString::to_string))]
    Invalid(Vec<Diagnostic>),
}

impl Error {
    /// The findings behind this error: one for [`Error::Syntax`], all for
    /// [`Error::Invalid`], none for [`Error::Io`].
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Error::Syntax(d) => std::slice::from_ref(d),
            Error::Invalid(ds) => ds,
            Error::Io { .. } => &[],
        }
    }
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A parsed aspera.conf: the document, where each value was written, and every finding.
#[derive(Debug, Clone)]
pub struct Config {
    doc: Document,
    spans: parse::Spans,
    diagnostics: Vec<Diagnostic>,
    users: std::collections::HashMap<String, usize>,
}

impl Config {
    /// Parses aspera.conf text. Fails only when the text is not a usable document;
    /// wrong values and validation problems are in [`Config::diagnostics`].
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let idx = diag::LineIndex::new(text);
        let root = xml::parse(text, &idx).map_err(Error::Syntax)?;
        let parsed = parse::document(&root, &idx).map_err(Error::Syntax)?;
        let mut conf = Config {
            doc: parsed.doc,
            spans: parsed.spans,
            diagnostics: parsed.diagnostics,
            users: parsed.users,
        };
        let more = conf.validate();
        conf.diagnostics.extend(more);
        // Stable: findings without a position (about what is absent) come last.
        conf.diagnostics
            .sort_by_key(|d| (d.pos.is_none(), d.pos, std::cmp::Reverse(d.severity)));
        Ok(conf)
    }

    /// A configuration with nothing written: every value is the built-in default.
    pub fn builtin() -> Self {
        Config {
            doc: Document::default(),
            spans: parse::Spans::new(),
            diagnostics: Vec::new(),
            users: std::collections::HashMap::new(),
        }
    }

    /// Parses aspera.conf bytes, which must be UTF-8.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Self::parse(text),
            Err(e) => {
                let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
                let pos = diag::LineIndex::new(valid).pos(valid.len());
                Err(Error::Syntax(Diagnostic::new(
                    Code::NotUtf8,
                    Some(pos),
                    "",
                    "the file is not UTF-8; save it as UTF-8",
                )))
            }
        }
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.len() > MAX_BYTES as u64 {
            return Err(Error::Syntax(Diagnostic::new(
                Code::TooLarge,
                None,
                "",
                format!(
                    "the file is {} bytes; the limit is {MAX_BYTES} bytes",
                    meta.len()
                ),
            )));
        }
        let bytes = std::fs::read(path).map_err(io)?;
        Self::parse_bytes(&bytes)
    }

    /// The document as written.
    pub fn document(&self) -> &Document {
        &self.doc
    }

    /// Every finding, errors and warnings, in file order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The configuration if it has no errors (warnings are fine), else
    /// [`Error::Invalid`] with every finding.
    pub fn into_checked(self) -> Result<Self> {
        if self.has_errors() {
            Err(Error::Invalid(self.diagnostics))
        } else {
            Ok(self)
        }
    }
}
