//! Property tests over random claims, keys, paths and damage.

use std::time::Duration;

use fallback_token::{Access, Direction, Form, Key, KeyRing, Token, VerifyError, VerifyOptions};
use proptest::prelude::*;

use crate::{FORMS, at, now};

fn form() -> impl Strategy<Value = Form> {
    prop::sample::select(FORMS.to_vec())
}

fn segment() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "ab", "a.b", "ä", "x y", "...", "-"])
        .prop_map(str::to_owned)
}

fn token_path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 0..4).prop_map(|s| format!("/{}", s.join("/")))
}

#[derive(Debug, Clone)]
struct Case {
    secret: String,
    form: Form,
    user: String,
    direction: Direction,
    paths: Vec<String>,
    iat: u64,
    life: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        "[ -~]{1,40}",
        form(),
        "[a-zA-Z0-9_.@\\\\ -]{1,20}",
        any::<bool>(),
        prop::collection::vec(token_path(), 1..6),
        1_000_000_000u64..3_000_000_000,
        1u64..=30 * 86_400,
    )
        .prop_map(|(secret, form, user, up, mut paths, iat, life)| {
            let direction = if up {
                Direction::Upload
            } else {
                Direction::Download
            };
            if up {
                paths.truncate(1);
            }
            Case {
                secret,
                form,
                user,
                direction,
                paths,
                iat,
                life,
            }
        })
}

fn issue(c: &Case) -> (Key, String) {
    let key = Key::derive(&c.secret, c.form).unwrap();
    let b = match c.direction {
        Direction::Upload => Token::upload(&c.user, &c.paths[0]),
        Direction::Download => Token::download(&c.user, &c.paths),
    };
    let t = b
        .issued_at(at(c.iat))
        .valid_for(Duration::from_secs(c.life))
        .issue(&key)
        .unwrap();
    (key, t)
}

/// Which refusals a damaged byte at `offset` may cause, given the header length.
fn allowed(offset: usize, header_end: usize) -> &'static [&'static str] {
    match offset {
        0 => &["unsupported-version", "malformed"],
        1 => &["malformed", "form-mismatch"],
        o if o < header_end => &["malformed", "unknown-key"],
        _ => &["bad-signature", "malformed"],
    }
}

const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Checks that `damaged` (token with char `i` changed) is refused for an allowed reason.
fn check_damage(
    ring: &KeyRing,
    c: &Case,
    original: &str,
    damaged: &str,
    i: usize,
) -> Result<(), TestCaseError> {
    let opts = now(c.iat);
    let err = match ring.decode(damaged, &opts) {
        Ok(claims) => {
            return Err(TestCaseError::fail(format!(
                "damaged token verified: {damaged} ({claims:?}), original {original}"
            )));
        }
        Err(e) => e,
    };
    let kind = err.kind();
    if i < 5 {
        prop_assert!(
            ["malformed", "unsupported-version"].contains(&kind),
            "{err}"
        );
        return Ok(());
    }
    let j = i - 5;
    let new = damaged.as_bytes()[i];
    if !B64.as_bytes().contains(&new) {
        prop_assert_eq!(kind, "malformed");
        return Ok(());
    }
    let header_end = 3 + fallback_token::envelope(original).unwrap().key_id.len();
    let (lo, hi) = (j * 6 / 8, (j * 6 + 5) / 8);
    let ok = (lo..=hi).any(|o| allowed(o, header_end).contains(&kind));
    prop_assert!(ok, "char {} (bytes {}..={}) gave {:?}", i, lo, hi, err);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_issued_token_verifies(c in case()) {
        let (key, t) = issue(&c);
        let ring = KeyRing::from(key);
        let claims = ring.decode(&t, &now(c.iat + c.life / 2)).unwrap();
        prop_assert_eq!(&claims.user, &c.user);
        prop_assert_eq!(claims.direction, c.direction);
        prop_assert_eq!(claims.expires_at, c.iat + c.life);
        for p in &c.paths {
            let a = Access { user: Some(&c.user), direction: c.direction, path: p };
            prop_assert!(claims.check(&a).is_ok(), "{} not covered by {:?}", p, claims.paths);
        }
    }

    #[test]
    fn changing_any_character_is_detected(
        c in case(),
        pos in any::<prop::sample::Index>(),
        replacement in prop::sample::select(B64.chars().chain("=+/ .~%".chars()).collect::<Vec<_>>()),
    ) {
        let (key, t) = issue(&c);
        let ring = KeyRing::from(key);
        let i = pos.index(t.len());
        let old = t.as_bytes()[i] as char;
        prop_assume!(old != replacement);
        let mut damaged = t.clone();
        damaged.replace_range(i..=i, replacement.encode_utf8(&mut [0; 4]));
        check_damage(&ring, &c, &t, &damaged, i)?;
    }

    #[test]
    fn flipping_any_bit_is_detected(c in case(), pos in any::<prop::sample::Index>(), bit in 0u8..7) {
        let (key, t) = issue(&c);
        let ring = KeyRing::from(key);
        let i = pos.index(t.len());
        let flipped = (t.as_bytes()[i] ^ (1 << bit)) as char;
        let mut damaged = t.clone();
        damaged.replace_range(i..=i, flipped.encode_utf8(&mut [0; 4]));
        // A flipped whitespace byte at either end would be trimmed like a pasted token;
        // the token's own characters are never whitespace, so this is damage too.
        check_damage(&ring, &c, &t, &damaged, i)?;
    }

    #[test]
    fn a_token_from_key_a_fails_under_key_b(c in case(), other in "[ -~]{1,40}") {
        prop_assume!(other != c.secret);
        let (_, t) = issue(&c);
        let b = KeyRing::from(Key::derive(&other, c.form).unwrap());
        prop_assert_eq!(b.decode(&t, &now(c.iat)).unwrap_err(), VerifyError::UnknownKey);
    }

    #[test]
    fn coverage_matches_a_component_model(
        scopes in prop::collection::vec(token_path(), 1..5),
        request in prop::collection::vec(
            prop::sample::select(vec!["a", "b", "ab", "a.b", "..", ".", "", "ä"]), 0..5),
        key_form in form(),
    ) {
        let key = Key::derive("coverage-model-secret-xx", key_form).unwrap();
        let claims = Token::download("u", &scopes).claims(&key).unwrap();
        let request_path = request.join("/");
        // Reference: drop empty and "." components; ".." is never covered; a scope
        // covers a request when its components are a prefix of the request's.
        let comps = |p: &str| -> Vec<String> {
            p.split('/').filter(|s| !s.is_empty() && *s != ".").map(str::to_owned).collect()
        };
        let req = comps(&request_path);
        let expected = !req.iter().any(|s| s == "..")
            && scopes.iter().any(|s| {
                let sc = comps(s);
                sc.len() <= req.len() && sc[..] == req[..sc.len()]
            });
        prop_assert_eq!(claims.covers(&request_path), expected, "{:?} vs {:?}", scopes, request_path);
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}", prefixed in any::<bool>()) {
        let ring = KeyRing::from(Key::derive("x-secret-for-fuzzing-12345", Form::Signed).unwrap());
        let text = if prefixed { format!("fbt1_{s}") } else { s };
        prop_assert!(ring.decode(&text, &VerifyOptions::default()).is_err());
        let _ = fallback_token::inspect_unverified(&text);
    }
}
