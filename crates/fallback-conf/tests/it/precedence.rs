//! Effective settings: user > groups (lower precedence first) > default > built-in.

use std::path::Path;

use fallback_conf::{Cipher, Config, Docroot, Origin, TransferAuth};

use crate::fixture;

fn multi() -> Config {
    Config::load(&fixture("multi-user.conf")).unwrap()
}

fn origin_kind(o: &Origin) -> String {
    match o {
        Origin::Builtin => "builtin".into(),
        Origin::Global { .. } => "global".into(),
        Origin::Default { .. } => "default".into(),
        Origin::Group { name, .. } => format!("group {name}"),
        Origin::User { name, .. } => format!("user {name}"),
        other => format!("{other:?}"),
    }
}

#[test]
fn user_section_beats_everything() {
    let c = multi();
    let alice = c.user("alice", &["staff", "admins"]);
    assert_eq!(
        alice.docroot.value.as_ref().and_then(Docroot::as_local),
        Some(Path::new("/srv/alice"))
    );
    assert_eq!(origin_kind(&alice.docroot.origin), "user alice");
    assert!(!alice.write_allowed.value);
    // Not in alice's section: the lowest precedence group wins (admins = 0).
    assert_eq!(alice.token_life_seconds.value, 900);
    assert_eq!(
        origin_kind(&alice.token_life_seconds.origin),
        "group admins"
    );
}

#[test]
fn lower_precedence_number_wins_among_groups() {
    let c = multi();
    // The order the groups are named in does not matter.
    for groups in [["staff", "admins"], ["admins", "staff"]] {
        let u = c.user("nobody-special", &groups);
        assert_eq!(u.token_life_seconds.value, 900, "{groups:?}");
        assert_eq!(u.allowed_cipher.value, Cipher::Aes256);
        // admins has no docroot: staff's applies before <default>'s.
        assert_eq!(
            u.docroot.value.as_ref().and_then(Docroot::as_local),
            Some(Path::new("/srv/staff"))
        );
        assert_eq!(origin_kind(&u.docroot.origin), "group staff");
    }
    let staff_only = c.user("x", &["staff"]);
    assert_eq!(staff_only.token_life_seconds.value, 7200);
    assert_eq!(staff_only.allowed_cipher.value, Cipher::Any);
    assert!(!staff_only.must_encrypt());
}

#[test]
fn default_then_builtin() {
    let c = multi();
    let d = c.user("stranger", &["no-such-group"]);
    assert_eq!(d, {
        let mut s = c.defaults();
        s.user = "stranger".into();
        s
    });
    assert_eq!(d.token_life_seconds.value, 3600);
    assert_eq!(origin_kind(&d.token_life_seconds.origin), "default");
    assert_eq!(d.transfer_in.value, TransferAuth::Token);
    assert!(d.read_allowed.value);
    assert_eq!(origin_kind(&d.read_allowed.origin), "builtin");
    assert_eq!(d.token_key.origin.pos().unwrap().line, 16);
}

#[test]
fn encrypting_users_are_flagged() {
    let c = multi();
    let bob = c.user("bob", &[]);
    assert_eq!(bob.required_cipher(), Some(Cipher::Aes128));
    assert!(bob.must_encrypt());
    assert_eq!(bob.token_life_seconds.value, 600);
    let carol = c.user("DOMAIN\\carol", &[]);
    assert_eq!(carol.transfer_out.value, TransferAuth::Deny);
    assert!(!carol.must_encrypt());
}

#[test]
fn origins_carry_the_line_of_the_value() {
    let c = multi();
    let bob = c.user("bob", &["staff"]);
    assert_eq!(bob.token_life_seconds.origin.pos().unwrap().line, 38);
    assert_eq!(bob.docroot.origin.pos().unwrap().line, 51);
    assert_eq!(bob.token_cipher.origin, Origin::Builtin);
}
