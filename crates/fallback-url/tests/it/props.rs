//! parse(build(x)) == x for generated URLs; no input panics the parser.

use fallback_url::{Enc, FaspUrl, Params, Policy, Scheme};
use proptest::option::of;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    // Anything printable, including the characters that need encoding.
    "[ -~é\\\\ü/=&?#%+]{0,24}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9]{0,6}){0,2}",
        any::<[u8; 4]>().prop_map(|o| std::net::Ipv4Addr::from(o).to_string()),
        any::<[u16; 8]>().prop_map(|s| std::net::Ipv6Addr::from(s).to_string()),
    ]
}

fn enc() -> impl Strategy<Value = Enc> {
    prop::sample::select(vec![
        Enc::None,
        Enc::Aes128,
        Enc::Aes192,
        Enc::Aes256,
        Enc::Aes128Cfb,
        Enc::Aes256Gcm,
    ])
}

fn params() -> impl Strategy<Value = Params> {
    (
        (of(any::<bool>()), of(text()), of(text()), of(text())),
        (of(1..=u16::MAX), of(1..=u16::MAX), of(any::<bool>())),
        (
            of(prop::sample::select(vec![
                Policy::Fixed,
                Policy::High,
                Policy::Fair,
                Policy::Low,
            ])),
            of(any::<u64>()),
            of(any::<u64>()),
            of(any::<u64>()),
        ),
        (
            of(enc()),
            of("[A-Za-z0-9+/]{0,20}={0,2}"),
            of(any::<bool>()),
            of(any::<bool>()),
            of(any::<bool>()),
            of(any::<u32>()),
        ),
        prop::collection::vec(("x[a-z]{1,6}", text()), 0..3),
    )
        .prop_map(
            |(
                (auth, token, cookie, sshfp),
                (port, httpport, fallback),
                (policy, targetrate, minrate, bwcap),
                (enc, tags64, createpath, lockpolicy, lockminrate, v),
                other,
            )| Params {
                auth,
                token,
                cookie,
                sshfp,
                port,
                httpport,
                fallback,
                policy,
                targetrate,
                minrate,
                bwcap,
                enc,
                tags64,
                createpath,
                lockpolicy,
                lockminrate,
                v,
                other,
            },
        )
}

fn url() -> impl Strategy<Value = FaspUrl> {
    (
        any::<bool>(),
        of("[ -~é\\\\]{1,16}"),
        of("[ -~]{1,8}"),
        host(),
        of(1..=u16::MAX),
        prop_oneof![Just(String::new()), "(/[ -~é]{1,8}){1,3}"],
        params(),
    )
        .prop_map(
            |(faspe, user, password, host, port, path, params)| FaspUrl {
                scheme: if faspe { Scheme::Faspe } else { Scheme::Fasp },
                user,
                password,
                host,
                port,
                path,
                params,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_inverts_build(u in url()) {
        let text = u.to_string();
        let back = FaspUrl::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        prop_assert_eq!(back, u, "{}", text);
    }

    #[test]
    fn any_text_never_panics(s in "\\PC{0,120}") {
        for candidate in [s.clone(), format!("fasp://{s}"), format!("fasp://h/x?{s}")] {
            if let Ok(u) = FaspUrl::parse(&candidate) {
                let _ = u.http_base();
                let _ = u.tags();
                let _ = FaspUrl::parse(&u.to_string());
            }
        }
    }
}
