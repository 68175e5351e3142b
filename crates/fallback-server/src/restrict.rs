//! aspera.conf docroot restrictions (`file_system/access/paths/path/restrictions`):
//! which files a user may transfer, by pattern. As the product documents them: a rule
//! starting with `!` refuses what it matches; when any rule does not start with `!`, a
//! file must match one of those. `*` matches any run of characters (`/` included), `?`
//! one character. A rule with a scheme (`file:////data/*`, the product's URI form) is
//! matched against the file's `file:///` URI, any other rule against its absolute path.
//! In a bucket, both kinds of rule are matched against the file's URI,
//! `s3://HOST/BUCKET/PREFIX/PATH` (no credentials), so `!*.key` holds there too.

/// Whether the file at docroot-relative `path` may be transferred under `rules`;
/// `base` is the docroot's directory or its bucket's URI
/// ([`crate::store::Store::restriction_base`]).
pub(crate) fn allows_in(rules: &[String], base: &str, path: &fallback_engine::RelPath) -> bool {
    rules.is_empty()
        || allows(
            rules,
            &format!(
                "{}/{}",
                base.trim_end_matches('/'),
                path.to_string().trim_start_matches('/')
            ),
        )
}

/// Leaves out of the listing `entries` of folder `dir` the files `rules` refuse (a
/// listing shows only what may be fetched); folders stay.
pub(crate) fn retain_allowed(
    rules: &[String],
    base: &str,
    dir: &fallback_engine::RelPath,
    entries: &mut Vec<fallback_engine::ManifestEntry>,
) {
    if rules.is_empty() {
        return;
    }
    entries.retain(|e| {
        e.kind != fallback_engine::EntryKind::File
            || fallback_engine::RelPath::parse(&e.path)
                .is_ok_and(|p| allows_in(rules, base, &dir.join(&p)))
    });
}

/// Whether the file at `abs` (an absolute path, or a bucket's URI) may be transferred
/// under `rules`.
pub(crate) fn allows(rules: &[String], abs: &str) -> bool {
    if rules.is_empty() {
        return true;
    }
    let plain = abs;
    let uri = if abs.contains("://") {
        abs.to_owned()
    } else {
        format!("file:///{plain}")
    };
    let matches = |rule: &str| {
        let subject = if rule.contains("://") {
            uri.as_str()
        } else {
            plain
        };
        glob(rule.as_bytes(), subject.as_bytes())
    };
    let mut positive = false;
    let mut included = false;
    for rule in rules {
        if let Some(neg) = rule.strip_prefix('!') {
            if matches(neg) {
                return false;
            }
        } else {
            positive = true;
            included |= matches(rule);
        }
    }
    !positive || included
}

/// `*` and `?` globbing over bytes, iterative (no backtracking blow-up: the last `*`
/// is the only one ever resumed).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::{allows, glob};
    use proptest::prelude::*;

    fn rules(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_products_examples() {
        let key = "/srv/data/secret.key";
        let doc = "/srv/data/docs/a.pdf";
        assert!(!allows(&rules(&["!*.key"]), key));
        assert!(allows(&rules(&["!*.key"]), doc));
        let only_docs = rules(&["file:////srv/data/docs/*"]);
        assert!(allows(&only_docs, doc));
        assert!(!allows(&only_docs, key));
        assert!(allows(&rules(&[]), key));
        assert!(!allows(&rules(&["/srv/data/docs/*", "!*.pdf"]), doc));
    }

    #[test]
    fn in_a_bucket_rules_match_the_objects_uri() {
        let key = "s3://s3.amazonaws.com/b/p/secret.key";
        let doc = "s3://s3.amazonaws.com/b/p/docs/a.pdf";
        assert!(!allows(&rules(&["!*.key"]), key));
        assert!(allows(&rules(&["!*.key"]), doc));
        let only_docs = rules(&["s3://s3.amazonaws.com/b/p/docs/*"]);
        assert!(allows(&only_docs, doc));
        assert!(!allows(&only_docs, key));
        let path = fallback_engine::RelPath::parse("docs/a.pdf").unwrap();
        assert!(super::allows_in(
            &only_docs,
            "s3://s3.amazonaws.com/b/p",
            &path
        ));
    }

    #[test]
    fn globs() {
        assert!(glob(b"abc*f", b"abcdef"));
        assert!(!glob(b"abc*f", b"abcdefg"));
        assert!(glob(b"*.tmp", b".tmp"));
        assert!(glob(b"a?c", b"abc"));
        assert!(glob(b"**", b""));
    }

    proptest! {
        #[test]
        fn a_literal_matches_itself_and_star_matches_all(s in "[a-z./]{0,30}") {
            prop_assert!(glob(s.as_bytes(), s.as_bytes()));
            prop_assert!(glob(b"*", s.as_bytes()));
            let prefixed = format!("{s}*");
            let extended = format!("{s}x");
            prop_assert!(glob(prefixed.as_bytes(), extended.as_bytes()));
        }
    }
}
