//! Each refusal has its own reason.

use std::time::Duration;

use base64::Engine as _;

use fallback_token::{
    Access, Direction, Error, Form, Key, KeyRing, PathProblem, Token, VerifyError, VerifyOptions,
    envelope, inspect_unverified,
};

use crate::{FORMS, SECRET, at, key, now, ring};

const T0: u64 = 1_790_000_000;

fn download(paths: &[&str]) -> String {
    Token::download("alice", paths)
        .issued_at(at(T0))
        .valid_for(Duration::from_hours(1))
        .issue(&key(Form::Signed))
        .unwrap()
}

#[test]
fn every_form_round_trips() {
    for form in FORMS {
        let t = Token::upload("alice", "/incoming")
            .issued_at(at(T0))
            .valid_for(Duration::from_hours(1))
            .issue(&key(form))
            .unwrap();
        let c = ring(form)
            .verify_with(
                &t,
                &Access::upload("alice", "/incoming/a/b.txt"),
                &now(T0 + 10),
            )
            .unwrap();
        assert_eq!(c.paths, ["/incoming"]);
        assert_eq!(c.form, form);
        assert_eq!(c.expires_at, T0 + 3600);
        assert_eq!(envelope(&t).unwrap().form, form);
    }
}

#[test]
fn sealed_tokens_hide_their_claims() {
    let t = Token::download("alice", &["/secret-project/plans.pdf"])
        .issue(&key(Form::SealedAes256))
        .unwrap();
    assert_eq!(inspect_unverified(&t).unwrap_err(), VerifyError::Sealed);
    let signed = Token::download("alice", &["/secret-project/plans.pdf"])
        .issue(&key(Form::Signed))
        .unwrap();
    assert_eq!(
        inspect_unverified(&signed).unwrap().paths,
        ["/secret-project/plans.pdf"]
    );
    // The sealed bytes contain neither the user nor the path.
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t.strip_prefix("fbt1_").unwrap())
        .unwrap();
    for needle in [&b"alice"[..], b"secret-project"] {
        assert!(!raw.windows(needle.len()).any(|w| w == needle));
    }
}

#[test]
fn time_boundaries_honour_the_skew() {
    let t = download(&["/d"]);
    let r = ring(Form::Signed);
    let check = |secs: u64, skew: u64| {
        r.decode(
            &t,
            &VerifyOptions {
                skew: Duration::from_secs(skew),
                ..now(secs)
            },
        )
        .map(|_| ())
    };
    let exp = T0 + 3600;
    // Skew 0: valid up to exp - 1, expired at exp.
    assert_eq!(check(exp - 1, 0), Ok(()));
    assert_eq!(check(exp, 0), Err(VerifyError::Expired));
    assert_eq!(check(exp + 1, 0), Err(VerifyError::Expired));
    // Skew 60: the window moves by 60 s each way.
    assert_eq!(check(exp + 59, 60), Ok(()));
    assert_eq!(check(exp + 60, 60), Err(VerifyError::Expired));
    assert_eq!(check(T0 - 60, 60), Ok(()));
    assert_eq!(check(T0 - 61, 60), Err(VerifyError::NotYetValid));
    assert_eq!(check(T0, 0), Ok(()));
    assert_eq!(check(T0 - 1, 0), Err(VerifyError::NotYetValid));
}

#[test]
fn direction_user_and_path_are_checked_in_that_order() {
    let t = download(&["/d", "/f.txt"]);
    let r = ring(Form::Signed);
    let o = now(T0);
    let v = |a: Access<'_>| r.verify_with(&t, &a, &o).map(|_| ());
    assert_eq!(v(Access::download("alice", "/d/x/y")), Ok(()));
    assert_eq!(v(Access::download("alice", "/f.txt")), Ok(()));
    assert_eq!(
        v(Access::upload("bob", "/elsewhere")),
        Err(VerifyError::WrongDirection {
            token: Direction::Download,
            request: Direction::Upload
        })
    );
    assert_eq!(
        v(Access::download("bob", "/d/x")),
        Err(VerifyError::WrongUser)
    );
    for outside in ["/d2", "/d/../x", "/", "/f.txt/../d2", "/f.txt2", "/e"] {
        assert_eq!(
            v(Access::download("alice", outside)),
            Err(VerifyError::PathNotCovered),
            "{outside}"
        );
    }
    // Spelled differently, same path.
    assert_eq!(v(Access::download("alice", "d/./x//y/")), Ok(()));
    // Any user, when the caller does not bind one.
    let any = Access {
        user: None,
        ..Access::download("", "/d")
    };
    assert_eq!(v(any), Ok(()));
}

#[test]
fn keys_do_not_cross() {
    let a = Key::derive(SECRET, Form::Signed).unwrap();
    let b = Key::derive("another-secret-of-twenty-chars", Form::Signed).unwrap();
    assert_ne!(a.id(), b.id());
    let t = Token::download("alice", &["/d"]).issue(&a).unwrap();
    assert_eq!(
        KeyRing::from(b.clone())
            .decode(&t, &VerifyOptions::default())
            .unwrap_err(),
        VerifyError::UnknownKey
    );
    // Same id, other secret: the signature catches it.
    let b_same_id = b.with_id(a.id()).unwrap();
    assert_eq!(
        KeyRing::from(b_same_id)
            .decode(&t, &VerifyOptions::default())
            .unwrap_err(),
        VerifyError::BadSignature
    );
    // Sealed with one secret, opened with another under the same id.
    let sa = Key::derive(SECRET, Form::SealedAes128)
        .unwrap()
        .with_id("k1")
        .unwrap();
    let sb = Key::derive("x-other-secret-xxxxxxxxx", Form::SealedAes128)
        .unwrap()
        .with_id("k1")
        .unwrap();
    let t = Token::download("alice", &["/d"]).issue(&sa).unwrap();
    assert_eq!(
        KeyRing::from(sb)
            .decode(&t, &VerifyOptions::default())
            .unwrap_err(),
        VerifyError::BadSignature
    );
}

#[test]
fn the_form_comes_from_the_key_not_the_token() {
    let signed = Token::download("alice", &["/d"])
        .issue(&key(Form::Signed))
        .unwrap();
    assert!(matches!(
        ring(Form::SealedAes128).decode(&signed, &VerifyOptions::default()),
        Err(VerifyError::FormMismatch { .. })
    ));
}

#[test]
fn rotation_keeps_old_tokens_valid() {
    let old = Key::derive("old-secret-0123456789abcdef", Form::Signed).unwrap();
    let new = Key::derive("new-secret-0123456789abcdef", Form::Signed).unwrap();
    let old_token = Token::download("alice", &["/d"]).issue(&old).unwrap();
    let mut ring = KeyRing::new(new.clone());
    ring.add(old.clone()).unwrap();
    assert_eq!(ring.primary().id(), new.id());
    assert!(ring.decode(&old_token, &VerifyOptions::default()).is_ok());
    assert_eq!(
        ring.add(old).unwrap_err(),
        Error::DuplicateKeyId(ring.keys()[1].id().to_owned())
    );
}

#[test]
fn issuing_refuses_what_cannot_be_checked() {
    let k = key(Form::Signed);
    assert_eq!(
        Token::download("alice", &["/a/../etc"])
            .issue(&k)
            .unwrap_err(),
        Error::InvalidPath {
            path: "/a/../etc".into(),
            problem: PathProblem::DotDot
        }
    );
    assert_eq!(
        Token::download::<&str>("alice", &[]).issue(&k).unwrap_err(),
        Error::NoPaths
    );
    assert_eq!(
        Token::upload("", "/in").issue(&k).unwrap_err(),
        Error::InvalidUser
    );
    assert_eq!(
        Token::upload("a\nb", "/in").issue(&k).unwrap_err(),
        Error::InvalidUser
    );
    assert!(matches!(
        Token::upload("a", "/in")
            .valid_for(Duration::ZERO)
            .issue(&k),
        Err(Error::InvalidLifetime { .. })
    ));
    assert!(matches!(
        Token::upload("a", "/in")
            .valid_for(Duration::from_hours(31 * 24))
            .issue(&k),
        Err(Error::InvalidLifetime { .. })
    ));
    assert_eq!(
        Key::derive("", Form::Signed).unwrap_err(),
        Error::EmptySecret
    );
    assert!(matches!(
        key(Form::Signed).with_id("has space"),
        Err(Error::InvalidKeyId(_))
    ));
}

#[test]
fn paths_are_normalised_sorted_and_deduplicated() {
    let c = Token::download("alice", &["b//c/", "/a/./x", "/b/c"])
        .claims(&key(Form::Signed))
        .unwrap();
    assert_eq!(c.paths, ["/a/x", "/b/c"]);
}

#[test]
fn malformed_inputs_say_so() {
    let r = ring(Form::Signed);
    let d = VerifyOptions::default();
    for bad in [
        "",
        "fbt1_",
        "fbt1_====",
        "Bearer fbt1_AAAA",
        "fbt1_AQ",
        "ATM2_ACsPr3W_d35XOqASXde2bPbvadFuMeG15Hoy9M61_zLbGEAAF465hdKlCgiEOh3gjRfgtf_2MTA",
    ] {
        assert!(
            matches!(r.decode(bad, &d), Err(VerifyError::Malformed(_))),
            "{bad:?}: {:?}",
            r.decode(bad, &d)
        );
    }
    assert_eq!(
        r.decode("fbt9_AAAA", &d).unwrap_err(),
        VerifyError::UnsupportedVersion
    );
    // A well-formed header naming a key we do not have: the key id is checked before
    // anything after it is read.
    assert_eq!(
        r.decode("fbt1_AQEBYQ", &d).unwrap_err(),
        VerifyError::UnknownKey
    );
    // Our key id, but nothing after the header.
    let header_only = {
        let id = r.primary().id();
        let mut b = vec![1u8, 1, u8::try_from(id.len()).unwrap()];
        b.extend_from_slice(id.as_bytes());
        format!(
            "fbt1_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
        )
    };
    assert!(matches!(
        r.decode(&header_only, &d),
        Err(VerifyError::Malformed(_))
    ));
    let huge = format!("fbt1_{}", "A".repeat(70_000));
    assert!(matches!(
        r.decode(&huge, &d),
        Err(VerifyError::Malformed(_))
    ));
}

#[test]
fn with_padding_or_surrounding_space() {
    let t = download(&["/d"]);
    let r = ring(Form::Signed);
    // Surrounding whitespace (a pasted token) is tolerated; padding is not.
    assert!(r.decode(&format!("  {t}\n"), &now(T0)).is_ok());
    assert!(matches!(
        r.decode(&format!("{t}="), &now(T0)),
        Err(VerifyError::Malformed(_))
    ));
}

#[test]
fn keys_from_aspera_conf() {
    let conf = fallback_conf::Config::parse(
        r"<CONF><default><authorization><token>
            <encryption_key>default-secret-0123456789</encryption_key>
          </token></authorization></default>
          <aaa><realms><realm><users><user><name>bob</name>
            <authorization><token><encryption_key>bob-secret-0123456789abc</encryption_key>
            <encryption_type>aes-256</encryption_type></token></authorization>
          </user></users></realm></realms></aaa></CONF>",
    )
    .unwrap();
    let ring = KeyRing::from_config(&conf).unwrap().unwrap();
    assert_eq!(ring.keys().len(), 2);
    assert_eq!(ring.primary().form(), Form::Signed);
    let bob = Key::from_settings(&conf.user("bob", &[])).unwrap();
    assert_eq!(bob.form(), Form::SealedAes256);
    let t = Token::upload("bob", "/in").issue(&bob).unwrap();
    assert!(ring.verify(&t, &Access::upload("bob", "/in/x")).is_ok());
    let none = fallback_conf::Config::parse("<CONF/>").unwrap();
    assert!(KeyRing::from_config(&none).is_none());
    assert!(matches!(
        Key::from_settings(&none.defaults()),
        Err(fallback_token::Error::NoKey(_))
    ));
}
