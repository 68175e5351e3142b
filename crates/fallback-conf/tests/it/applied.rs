//! The settings fallback applies over HTTP beyond authorization: docroot substitutions
//! and `peer_ip` docroots, overwrite, modes, rate caps, restrictions; and misspellings of
//! security settings refused.

use std::path::Path;

use fallback_conf::{Account, Code, Config, Docroot, FileMode, Overwrite};

use crate::check;

fn conf(default: &str, users: &str) -> Config {
    let text = format!(
        "<CONF><http_server><enable_http>true</enable_http></http_server>\
         <default>{default}</default><aaa><realms><realm><users>{users}</users></realm></realms></aaa></CONF>"
    );
    let c = Config::parse(&text).unwrap();
    assert!(!c.has_errors(), "{:?}", c.diagnostics());
    c
}

fn root(p: &str) -> String {
    format!("<file_system><access><paths><path>{p}</path></paths></access></file_system>")
}

#[test]
fn name_and_home_are_substituted_per_user() {
    let c = conf(&root("<absolute>/srv/users/$(name)</absolute>"), "");
    let alice = c.user("alice", &[]);
    assert_eq!(
        alice.docroot.value.as_ref().and_then(Docroot::as_local),
        Some(Path::new("/srv/users/alice"))
    );
    assert_eq!(alice.docroot_written.as_deref(), Some("/srv/users/$(name)"));
    // Names that are not one plain file name never stand for $(name).
    for bad in ["..", ".", "a/b", "", "x\u{0}y"] {
        let u = c.user(bad, &[]);
        assert_eq!(u.docroot.value, None, "{bad:?}");
        assert!(u.docroot_problem.is_some(), "{bad:?}");
    }
    let c = conf(&root("<absolute>$(home)/outbox</absolute>"), "");
    let with_home = c.account(&Account {
        name: "bob".into(),
        home: Some("/home/bob".into()),
        groups: vec![],
    });
    assert_eq!(
        with_home.docroot.value.as_ref().and_then(Docroot::as_local),
        Some(Path::new("/home/bob/outbox"))
    );
    // Without an account, $(home) cannot be made: refused, with why.
    let nobody = c.user("nobody-here", &[]);
    assert_eq!(nobody.docroot.value, None);
    assert!(nobody.docroot_problem.unwrap().contains("home"));
    // From the system: root's home.
    let root_user = c.account(&Account::lookup("root"));
    assert_eq!(
        root_user.docroot.value.as_ref().and_then(Docroot::as_local),
        Some(Path::new("/root/outbox"))
    );
}

#[test]
fn unknown_substitutions_are_errors() {
    check(
        "<CONF><http_server><enable_http>true</enable_http></http_server><default>\
         <file_system><access><paths><path><absolute>/srv/$(user)</absolute></path></paths>\
         </access></file_system></default></CONF>",
        &[(Code::DocrootSubstitution, 1)],
    );
}

#[test]
fn peer_ip_docroots_pick_by_client_address() {
    let c = conf(
        &root(
            "<absolute peer_ip=\"10.0.0.5\">/srv/lan</absolute>\
             <absolute peer_ip=\"2001:db8::1\">/srv/v6</absolute>\
             <absolute>/srv/all</absolute>",
        ),
        "",
    );
    let u = c.user("alice", &[]);
    let at = |ip: &str| {
        u.docroot_for(Some(ip.parse().unwrap()))
            .and_then(Docroot::as_local)
            .map(Path::to_path_buf)
    };
    assert_eq!(at("10.0.0.5").as_deref(), Some(Path::new("/srv/lan")));
    assert_eq!(
        at("::ffff:10.0.0.5").as_deref(),
        Some(Path::new("/srv/lan"))
    );
    assert_eq!(at("2001:db8::1").as_deref(), Some(Path::new("/srv/v6")));
    assert_eq!(at("10.0.0.6").as_deref(), Some(Path::new("/srv/all")));
    assert_eq!(
        u.docroot_for(None).and_then(Docroot::as_local),
        Some(Path::new("/srv/all"))
    );
    // A user section's docroots replace the default's as a whole.
    let c = conf(
        &root("<absolute peer_ip=\"10.0.0.5\">/srv/lan</absolute><absolute>/srv/all</absolute>"),
        &format!(
            "<user><name>bob</name>{}</user>",
            root("<absolute>/srv/bob</absolute>")
        ),
    );
    let bob = c.user("bob", &[]);
    assert_eq!(
        bob.docroot_for(Some("10.0.0.5".parse().unwrap()))
            .and_then(Docroot::as_local),
        Some(Path::new("/srv/bob"))
    );
    check(
        "<CONF><http_server><enable_http>true</enable_http></http_server><default>\
         <file_system><access><paths><path>\n<absolute peer_ip=\"10.0.0.999\">/a</absolute>\n\
         <absolute>/b</absolute>\n<absolute>/c</absolute></path></paths>\
         </access></file_system></default></CONF>",
        &[(Code::InvalidValue, 2), (Code::DuplicateElement, 4)],
    );
}

#[test]
fn overwrite_modes_and_caps_resolve_with_their_defaults() {
    let c = conf(
        "<file_system><access><paths><path><absolute>/d</absolute></path></paths></access>\
         <overwrite>deny</overwrite><file_create_grant_mask>664</file_create_grant_mask></file_system>\
         <transfer><out><bandwidth><flow><target_rate><cap>Unlimited</cap></target_rate></flow></bandwidth></out></transfer>",
        "<user><name>u</name><file_system><file_create_mode>0600</file_create_mode>\
         <directory_create_mode>2770</directory_create_mode></file_system>\
         <transfer><in><bandwidth><flow><target_rate><cap>16000</cap></target_rate></flow></bandwidth></in></transfer></user>",
    );
    let d = c.user("other", &[]);
    assert_eq!(d.overwrite.value, Overwrite::Deny);
    assert_eq!(d.file_mode(), 0o664);
    assert_eq!(d.dir_mode(), 0o755, "the product's default grant mask");
    assert_eq!(d.rate_limit(true), None);
    assert_eq!(d.rate_limit(false), None, "Unlimited");
    let u = c.user("u", &[]);
    assert_eq!(u.file_create_mode.value, Some(FileMode(0o600)));
    assert_eq!(u.file_mode(), 0o600, "the exact mode wins over the mask");
    assert_eq!(u.dir_mode(), 0o2770);
    // 16000 kbps = 16,000,000 bit/s = 2,000,000 bytes/s.
    assert_eq!(u.rate_limit(true), Some(2_000_000));
    let b = Config::builtin().defaults();
    assert_eq!(b.overwrite.value, Overwrite::Allow);
    assert_eq!((b.file_mode(), b.dir_mode()), (0o644, 0o755));
}

#[test]
fn bad_modes_and_caps_are_errors() {
    let fs = |inner: &str| {
        format!(
            "<CONF><http_server><enable_http>true</enable_http></http_server><default>\
             <file_system><access><paths><path><absolute>/d</absolute></path></paths></access>\n\
             {inner}</file_system></default></CONF>"
        )
    };
    check(
        &fs("<file_create_mode>4755</file_create_mode>"),
        &[(Code::InvalidValue, 2)],
    );
    check(
        &fs("<file_create_mode>rw-r--r--</file_create_mode>"),
        &[(Code::InvalidValue, 2)],
    );
    check(
        &fs("<directory_create_mode>4755</directory_create_mode>"),
        &[(Code::InvalidValue, 2)],
    );
    check(
        &fs("<overwrite>never</overwrite>"),
        &[(Code::InvalidValue, 2)],
    );
    check(
        "<CONF><http_server><enable_http>true</enable_http></http_server><default>\
         <file_system><access><paths><path><absolute>/d</absolute></path></paths></access></file_system>\n\
         <transfer><in><bandwidth><flow><target_rate><cap>0</cap></target_rate></flow></bandwidth></in></transfer>\
         </default></CONF>",
        &[(Code::InvalidInteger, 2)],
    );
}

#[test]
fn misspelt_security_settings_are_errors_and_others_warnings() {
    let base = |inner: &str| {
        format!(
            "<CONF><http_server><enable_http>true</enable_http></http_server><default>\
             <file_system><access><paths><path><absolute>/d</absolute></path></paths></access></file_system>\n\
             {inner}</default></CONF>"
        )
    };
    for typo in [
        "<transfer><encryption><allowed_ciper>aes-128</allowed_ciper></encryption></transfer>",
        "<authorization><transfer><in><valeu>token</valeu></in></transfer></authorization>",
        "<authorization><tokn><encryption_key>x</encryption_key></tokn></authorization>",
        "<file_system><overwite>deny</overwite></file_system>",
        "<file_system><acess/></file_system>",
    ] {
        check(&base(typo), &[(Code::UnknownSecurityElement, 2)]);
    }
    // A lost section that holds them.
    check(
        "<CONF><http_server><enable_http>true</enable_http></http_server>\n<defualt/></CONF>",
        &[(Code::UnknownSecurityElement, 2), (Code::DocrootMissing, 0)],
    );
    // Elsewhere, a typo stays a warning.
    check(
        &base("<file_system><read_blok_size>1</read_blok_size></file_system>"),
        &[(Code::UnknownElement, 2)],
    );
}

#[test]
fn restrictions_are_read_in_order() {
    let c = conf(
        &root(
            "<absolute>/d</absolute><restrictions><restriction>!*.key</restriction>\
             <restriction>file:////d/pub/*</restriction></restrictions>",
        ),
        "",
    );
    assert_eq!(
        c.user("a", &[]).restrictions.value,
        vec!["!*.key".to_owned(), "file:////d/pub/*".to_owned()]
    );
}

fn with_root(root: &str) -> Config {
    Config::parse(&format!(
        "<CONF><http_server><enable_http>true</enable_http></http_server><default>\
         <file_system><access><paths><path><absolute>{root}</absolute>\
         </path></paths></access></file_system></default></CONF>"
    ))
    .unwrap()
}

#[test]
fn s3_docroots_are_read_as_the_product_writes_them() {
    let c = with_root(
        "s3://AKIDXX:SeCrEt%2Fplus%2B@s3.amazonaws.com/my_bucket/users/$(name)\
         ?storage-class=STANDARD&amp;server-side-encryption=AES256",
    );
    assert!(!c.has_errors(), "{:?}", c.diagnostics());
    let u = c.user("alice", &[]);
    let Some(Docroot::S3(r)) = u.docroot_for(None) else {
        panic!("{:?}", u.docroot)
    };
    assert!(r.is_aws());
    assert_eq!(
        (r.bucket.as_str(), r.prefix.as_str()),
        ("my_bucket", "users/alice")
    );
    let cred = r.credentials.as_ref().unwrap();
    assert_eq!(cred.access_key_id.expose(), "AKIDXX");
    assert_eq!(cred.secret_access_key.expose(), "SeCrEt/plus+");
    assert_eq!(r.storage_class.as_deref(), Some("STANDARD"));
    // Applied (objects are created in that class): nothing to warn about.
    assert!(
        !c.diagnostics()
            .iter()
            .any(|d| d.message.contains("storage-class")),
        "{:?}",
        c.diagnostics()
    );
    assert_eq!(r.server_side_encryption.as_deref(), Some("AES256"));
    // What `config show` prints: the settings serialized, and the template as written.
    let shown = format!(
        "{} {:?} {:?} {}",
        serde_json::to_string(&u).unwrap(),
        u,
        u.docroot_written,
        u.docroot.value.as_ref().unwrap()
    );
    assert!(
        !shown.contains("SeCrEt") && !shown.contains("AKIDXX"),
        "{shown}"
    );
    assert!(
        shown.contains("s3://<redacted>@s3.amazonaws.com/my_bucket/users/alice"),
        "{shown}"
    );
    // No credentials: the AWS chain; another host is an S3-compatible endpoint.
    let c = with_root("s3://127.0.0.1:9000/b?allow-http=true");
    let u = c.defaults();
    let r = u.docroot.value.as_ref().and_then(Docroot::as_s3).unwrap();
    assert!(r.credentials.is_none() && !r.is_aws());
    assert_eq!(r.endpoint().as_deref(), Some("http://127.0.0.1:9000"));
    // A name that is not one plain segment gets no docroot, and says why.
    let c = with_root("s3://h/b/$(name)");
    let u = c.user("..", &[]);
    assert!(
        u.docroot.value.is_none() && u.docroot_problem.is_some(),
        "{u:?}"
    );
}

#[test]
fn uri_docroots_that_cannot_be_used_are_refused_without_echoing_secrets() {
    for (root, code) in [
        (
            "oss://AKIDXX:SeCrEt@oss.example.com/b",
            Code::DocrootNotAbsolute,
        ),
        (
            "S3://AKIDXX:SeCrEt@s3.amazonaws.com/b",
            Code::DocrootNotAbsolute,
        ),
        ("s3://AKIDXX:SeCrEt@host:99999/b", Code::DocrootUri),
        (
            "s3://AKIDXX:SeCrEt@host/b?storage-class=COLD",
            Code::DocrootUri,
        ),
        ("s3://AKIDXX:SeCrEt@host/", Code::DocrootUri),
        ("s3://AKIDXX:Se/CrEt@host/b", Code::DocrootUri),
        ("s3://AKIDXX:SeCrEt@host/b/$(home)", Code::DocrootUri),
    ] {
        let c = with_root(root);
        let d = c
            .diagnostics()
            .iter()
            .find(|d| d.code == code)
            .unwrap_or_else(|| panic!("{root}: {:?}", c.diagnostics()));
        assert!(
            !d.message.contains("SeCrEt") && !d.message.contains("AKID"),
            "{d}"
        );
        let u = c.user("alice", &[]);
        assert!(u.docroot.value.is_none(), "{root}");
        let shown = format!("{u:?} {}", serde_json::to_string(&u).unwrap());
        assert!(!shown.contains("SeCrEt"), "{shown}");
    }
}

/// Key rotation as configuration: retired keys with the time their tokens are accepted
/// until, per section like `encryption_key`; one without a time, with a bad time or
/// with another element is refused (a key with no end would be accepted forever).
#[test]
fn retired_token_keys_are_read_with_their_end() {
    let token = |inner: &str| {
        format!(
            "<authorization><token><encryption_key>the-new-secret-of-32-characters!!</encryption_key>\
             <retired_keys>{inner}</retired_keys></token></authorization>{}",
            root("<absolute>/srv</absolute>")
        )
    };
    let c = conf(
        &token(
            "<key><encryption_key>the-old-secret-of-32-characters!!!</encryption_key>\
             <accept_until>2027-01-31T12:00:00Z</accept_until></key>\
             <key><encryption_key>an-older-secret-of-32-characters!</encryption_key>\
             <accept_until>2026-12-31</accept_until></key>",
        ),
        "",
    );
    let d = c.defaults();
    let keys = &d.retired_keys.value;
    assert_eq!(keys.len(), 2);
    assert_eq!(
        keys[0].secret.expose(),
        "the-old-secret-of-32-characters!!!"
    );
    assert_eq!(keys[0].accept_until, 1_801_396_800);
    assert_eq!(keys[1].accept_until, 1_798_675_200);
    // Never shown.
    assert!(!format!("{d:?}").contains("the-old-secret"));
    // Written back as read.
    let again = Config::parse(&c.document().to_xml()).unwrap();
    assert_eq!(again.defaults().retired_keys.value, d.retired_keys.value);

    // The current key listed as retired too: said, as it changes nothing.
    let text = format!(
        "<CONF><http_server><enable_http>true</enable_http></http_server><default>{}</default></CONF>",
        token(
            "<key><encryption_key>the-new-secret-of-32-characters!!</encryption_key>\
             <accept_until>2027-01-01</accept_until></key>"
        )
    );
    let c = Config::parse(&text).unwrap();
    assert!(
        c.diagnostics()
            .iter()
            .any(|d| d.code == Code::Ineffective && d.message.contains("retired_keys")),
        "{:?}",
        c.diagnostics()
    );

    for (bad, code) in [
        (
            "<key><encryption_key>the-old-secret-of-32-characters!!!</encryption_key></key>",
            Code::InvalidValue,
        ),
        (
            "<key><encryption_key>the-old-secret-of-32-characters!!!</encryption_key>\
             <accept_until>next year</accept_until></key>",
            Code::InvalidValue,
        ),
        (
            "<key><encryption_key>the-old-secret-of-32-characters!!!</encryption_key>\
             <accept_until>2027-01-01</accept_until><forever>true</forever></key>",
            Code::UnknownSecurityElement,
        ),
        ("<kye></kye>", Code::UnknownSecurityElement),
    ] {
        let text = format!(
            "<CONF><http_server><enable_http>true</enable_http></http_server>\
             <default>{}</default></CONF>",
            token(bad)
        );
        let c = Config::parse(&text).unwrap();
        assert!(
            c.diagnostics()
                .iter()
                .any(|d| d.code == code && d.is_error()),
            "{bad}: {:?}",
            c.diagnostics()
        );
    }
}
