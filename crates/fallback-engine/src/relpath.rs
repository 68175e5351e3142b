//! The one canonicaliser: every path from a request becomes a [`RelPath`] here, or is
//! refused. Nothing else in the project joins user input onto a file system path.

use std::fmt;
use std::path::PathBuf;

use percent_encoding::percent_decode_str;

/// The reserved top-level name under each docroot: staging area and state. Never
/// addressable by requests, never listed.
pub const RESERVED: &str = ".fallback";

/// Where the staging area is, relative to the docroot (for [`crate::Step`] paths).
pub(crate) const STAGING: &str = ".fallback/uploads";

/// Longest accepted path, in bytes (decoded).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest name of one path component, in bytes (`NAME_MAX` of Linux file systems).
pub const MAX_NAME_BYTES: usize = 255;
/// Most segments in a path.
pub const MAX_SEGMENTS: usize = 64;

/// Why a request path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// A `.` or `..` segment.
    #[error("dot segment")]
    DotSegment,
    /// An empty segment (`a//b`) other than a trailing one.
    #[error("empty segment")]
    EmptySegment,
    /// A backslash, colon, NUL or control character.
    #[error("forbidden character")]
    ForbiddenChar,
    /// A `%` left after decoding once (`%252e`): refused rather than decoded again.
    #[error("percent sign after decoding")]
    DoubleEncoded,
    /// Not UTF-8 once decoded.
    #[error("not UTF-8")]
    NotUtf8,
    /// Longer than the limits.
    #[error("too long")]
    TooLong,
    /// One component longer than [`MAX_NAME_BYTES`].
    #[error("a name is longer than 255 bytes")]
    NameTooLong,
    /// The reserved [`RESERVED`] name.
    #[error("reserved name")]
    Reserved,
}

/// A validated path relative to a docroot: normal segments only, never absolute, never
/// `..`. The empty path is the docroot itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RelPath {
    segments: Vec<String>,
}

fn check_segment(seg: &str) -> Result<(), PathError> {
    match seg {
        "" => return Err(PathError::EmptySegment),
        "." | ".." => return Err(PathError::DotSegment),
        _ => {}
    }
    if seg
        .chars()
        .any(|c| c == '\\' || c == ':' || c == '\0' || c.is_control())
    {
        return Err(PathError::ForbiddenChar);
    }
    if seg.contains('%') {
        return Err(PathError::DoubleEncoded);
    }
    if seg.len() > MAX_NAME_BYTES {
        return Err(PathError::NameTooLong);
    }
    Ok(())
}

impl RelPath {
    /// The docroot itself.
    pub fn root() -> Self {
        RelPath::default()
    }

    /// Parses a path as it appears in a request URI (percent-encoded): decoded exactly
    /// once, split on `/`, each segment checked. A leading `/` and one trailing `/` are
    /// allowed; the trailing one is reported by [`RelPath::parse_encoded_dir`].
    pub fn parse_encoded(raw: &str) -> Result<Self, PathError> {
        Self::parse_encoded_dir(raw).map(|(p, _)| p)
    }

    /// Like [`RelPath::parse_encoded`], also saying whether the path ended with `/`.
    pub fn parse_encoded_dir(raw: &str) -> Result<(Self, bool), PathError> {
        if raw.len() > MAX_PATH_BYTES * 3 {
            return Err(PathError::TooLong);
        }
        let decoded = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| PathError::NotUtf8)?;
        Self::parse_decoded(&decoded)
    }

    /// Parses an already-decoded path (from a token, tus metadata, a CLI argument).
    pub fn parse(path: &str) -> Result<Self, PathError> {
        Self::parse_decoded(path).map(|(p, _)| p)
    }

    fn parse_decoded(path: &str) -> Result<(Self, bool), PathError> {
        if path.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        let (body, trailing) = match trimmed.strip_suffix('/') {
            Some(b) => (b, true),
            None => (trimmed, false),
        };
        if body.is_empty() {
            return Ok((RelPath::root(), trailing || trimmed.is_empty()));
        }
        let mut segments = Vec::new();
        for seg in body.split('/') {
            check_segment(seg)?;
            segments.push(seg.to_owned());
        }
        if segments.len() > MAX_SEGMENTS {
            return Err(PathError::TooLong);
        }
        if segments[0] == RESERVED {
            return Err(PathError::Reserved);
        }
        Ok((RelPath { segments }, trailing))
    }

    /// The segments.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Whether this is the docroot itself.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// The last segment, if any.
    pub fn file_name(&self) -> Option<&str> {
        self.segments.last().map(String::as_str)
    }

    /// The parent path (the root's parent is the root).
    #[must_use]
    pub fn parent(&self) -> RelPath {
        let mut s = self.segments.clone();
        s.pop();
        RelPath { segments: s }
    }

    /// `self` followed by `other`.
    #[must_use]
    pub fn join(&self, other: &RelPath) -> RelPath {
        let mut s = self.segments.clone();
        s.extend(other.segments.iter().cloned());
        RelPath { segments: s }
    }

    /// Whether `self` is `other` or lies beneath it (whole segments).
    pub fn starts_with(&self, other: &RelPath) -> bool {
        self.segments.len() >= other.segments.len()
            && self.segments[..other.segments.len()] == other.segments[..]
    }

    /// A relative file system path built from the validated segments only (`.` for the
    /// root), to be opened beneath the docroot handle.
    pub fn to_fs_path(&self) -> PathBuf {
        if self.segments.is_empty() {
            return PathBuf::from(".");
        }
        self.segments.iter().collect()
    }
}

impl fmt::Display for RelPath {
    /// `/a/b` (the root is `/`): the form tokens and URLs use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return f.write_str("/");
        }
        for s in &self.segments {
            write!(f, "/{s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        for (raw, want, dir) in [
            ("", "/", true),
            ("/", "/", true),
            ("/a", "/a", false),
            ("a/b/", "/a/b", true),
            ("/caf%C3%A9/x%20y.txt", "/café/x y.txt", false),
            ("/...", "/...", false),
            ("/.hidden", "/.hidden", false),
        ] {
            let (p, d) = RelPath::parse_encoded_dir(raw).unwrap();
            assert_eq!((p.to_string().as_str(), d), (want, dir), "{raw}");
        }
    }

    #[test]
    fn refused() {
        for (raw, err) in [
            ("/../etc/passwd", PathError::DotSegment),
            ("/a/%2e%2e/b", PathError::DotSegment),
            ("/a/./b", PathError::DotSegment),
            ("/a//b", PathError::EmptySegment),
            ("//etc", PathError::EmptySegment),
            ("/%2Fetc/passwd", PathError::EmptySegment),
            ("/a%5C..%5Cb", PathError::ForbiddenChar),
            ("/a\\b", PathError::ForbiddenChar),
            ("/C:/x", PathError::ForbiddenChar),
            ("/a%00b", PathError::ForbiddenChar),
            ("/a%0Ab", PathError::ForbiddenChar),
            ("/%252e%252e/x", PathError::DoubleEncoded),
            ("/%%32%65", PathError::DoubleEncoded),
            ("/%FF", PathError::NotUtf8),
            ("/.fallback/uploads/x", PathError::Reserved),
            ("/.fallback", PathError::Reserved),
        ] {
            assert_eq!(RelPath::parse_encoded(raw), Err(err), "{raw}");
        }
        assert_eq!(RelPath::parse(&"a/".repeat(100)), Err(PathError::TooLong));
    }

    #[test]
    fn reserved_only_at_the_top() {
        assert!(RelPath::parse("/a/.fallback").is_ok());
    }

    #[test]
    fn prefix_is_by_segments() {
        let d = RelPath::parse("/d").unwrap();
        assert!(RelPath::parse("/d/x").unwrap().starts_with(&d));
        assert!(!RelPath::parse("/d2").unwrap().starts_with(&d));
        assert!(RelPath::parse("/x").unwrap().starts_with(&RelPath::root()));
    }
}
