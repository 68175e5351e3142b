//! Token paths: normalised before signing and before checking, compared by whole
//! components.

use std::fmt;

/// Why a path cannot go into a token or be checked against one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathProblem {
    /// A `..` segment: refused rather than resolved, so `d/../x` never means `x`.
    DotDot,
    /// A NUL or other control character.
    Control,
    /// A backslash, which some file systems and proxies treat as a separator.
    Backslash,
    /// Longer than [`MAX_PATH_BYTES`].
    TooLong,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathProblem::DotDot => "contains a `..` segment",
            PathProblem::Control => "contains a control character",
            PathProblem::Backslash => "contains a backslash",
            PathProblem::TooLong => "is too long",
        })
    }
}

/// Longest accepted path, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// Normalises a docroot-relative path: a leading `/`, no empty or `.` segments, no
/// trailing `/` (except the root itself). `/a/./b`, `a//b` and `a/b/` all become `/a/b`.
pub fn normalize(path: &str) -> Result<String, PathProblem> {
    if path.len() > MAX_PATH_BYTES {
        return Err(PathProblem::TooLong);
    }
    let mut out = String::with_capacity(path.len() + 1);
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err(PathProblem::DotDot),
            s => {
                if s.chars().any(char::is_control) {
                    return Err(PathProblem::Control);
                }
                if s.contains('\\') {
                    return Err(PathProblem::Backslash);
                }
                out.push('/');
                out.push_str(s);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Whether `path` is already in normal form (what [`normalize`] returns), without
/// allocating: verification checks every path of every token.
pub(crate) fn is_normal(path: &str) -> bool {
    if path == "/" {
        return true;
    }
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    path.len() <= MAX_PATH_BYTES
        && rest.split('/').all(|seg| {
            !matches!(seg, "" | "." | "..")
                && !seg.contains('\\')
                && !seg.chars().any(char::is_control)
        })
}

/// Whether the normalised `scope` covers the normalised `path`: the same path, or
/// anything beneath it. `/d` covers `/d` and `/d/x`, never `/d2`.
pub(crate) fn covers(scope: &str, path: &str) -> bool {
    scope == "/"
        || path == scope
        || (path.len() > scope.len()
            && path.starts_with(scope)
            && path.as_bytes()[scope.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        for (input, want) in [
            ("", "/"),
            ("/", "/"),
            ("//", "/"),
            ("/./", "/"),
            ("a", "/a"),
            ("/a/./b", "/a/b"),
            ("a//b", "/a/b"),
            ("/a/b/", "/a/b"),
            ("/dir with space/é", "/dir with space/é"),
        ] {
            assert_eq!(normalize(input).as_deref(), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn refused() {
        assert_eq!(normalize("/a/../b"), Err(PathProblem::DotDot));
        assert_eq!(normalize(".."), Err(PathProblem::DotDot));
        assert_eq!(normalize("/a\0b"), Err(PathProblem::Control));
        assert_eq!(normalize("/a\nb"), Err(PathProblem::Control));
        assert_eq!(normalize("/a\\..\\b"), Err(PathProblem::Backslash));
        assert_eq!(normalize(&"a".repeat(5000)), Err(PathProblem::TooLong));
        // "..." is a name, not a parent reference.
        assert_eq!(normalize("/.../x").as_deref(), Ok("/.../x"));
    }

    #[test]
    fn is_normal_agrees_with_normalize() {
        for p in [
            "/", "", "/a", "a", "/a/", "//a", "/a//b", "/./a", "/a/.", "/..", "/a/..", "/a\\b",
            "/a\nb", "/é/x y", "/...",
        ] {
            assert_eq!(is_normal(p), normalize(p).is_ok_and(|n| n == p), "{p:?}");
        }
    }

    #[test]
    fn coverage_is_by_whole_components() {
        assert!(covers("/d", "/d"));
        assert!(covers("/d", "/d/x/y"));
        assert!(!covers("/d", "/d2"));
        assert!(!covers("/d", "/"));
        assert!(!covers("/d/x", "/d"));
        assert!(covers("/", "/anything"));
    }
}
