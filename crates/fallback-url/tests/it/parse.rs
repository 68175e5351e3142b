//! Parsing real-world shaped links, leniency and strictness.

use fallback_url::{DEFAULT_URL_SSH_PORT, Enc, Error, FaspUrl, Policy, Scheme};

use crate::fixtures;

fn real_world() -> Vec<String> {
    std::fs::read_to_string(fixtures().join("urls/real-world.txt"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_fixture_parses_and_rebuilds_equivalently() {
    let urls = real_world();
    assert!(urls.len() >= 10);
    for text in urls {
        let url = FaspUrl::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let rebuilt = url.to_string();
        assert_eq!(FaspUrl::parse(&rebuilt).unwrap(), url, "{text}\n{rebuilt}");
        // Building is stable.
        assert_eq!(FaspUrl::parse(&rebuilt).unwrap().to_string(), rebuilt);
    }
}

#[test]
fn the_faspex_link_in_detail() {
    let text = real_world()
        .into_iter()
        .find(|u| u.starts_with("faspe://"))
        .unwrap();
    let u = FaspUrl::parse(&text).unwrap();
    assert_eq!(u.scheme, Scheme::Faspe);
    assert_eq!(u.user.as_deref(), Some("CORP\\jdoe"));
    assert_eq!(u.params.token.as_deref(), Some("ATV7_dGVzdA=="));
    assert_eq!(u.params.enc, Some(Enc::Aes128));
    assert_eq!(u.params.policy, Some(Policy::Fair));
    assert_eq!(u.params.cookie.as_deref(), Some("aspera.faspex:abc="));
    assert_eq!(u.params.other, [("protect".to_owned(), "yes".to_owned())]);
    assert_eq!(
        u.tags().unwrap()["aspera"]["faspex"]["transfer_id"],
        serde_json::json!("123")
    );
    // 443 is the default port of https: the URL does not spell it.
    assert_eq!(
        u.http_base().unwrap().as_str(),
        "https://faspex.example.com/aspera/https"
    );
}

#[test]
fn sloppy_but_clear_inputs_are_accepted() {
    let u = FaspUrl::parse("  fasp://CORP\\me@host/My Documents/a b.txt?fallback=yes&token=a+b=  ")
        .unwrap();
    assert_eq!(u.user.as_deref(), Some("CORP\\me"));
    assert_eq!(u.path, "/My Documents/a b.txt");
    assert_eq!(u.params.token.as_deref(), Some("a+b="));
    assert_eq!(u.ssh_port(), DEFAULT_URL_SSH_PORT);
    assert!(FaspUrl::parse("FASP://host/x").is_ok());
}

#[test]
fn what_matters_is_strict() {
    let e = FaspUrl::parse("fasp://h/x?httpport=eighty").unwrap_err();
    assert!(
        matches!(&e, Error::InvalidParam { name, .. } if name == "httpport"),
        "{e}"
    );
    assert!(e.to_string().contains("httpport"));
    for bad in ["0", "65536", "-1", "+80", "84%2043", ""] {
        assert!(
            matches!(
                FaspUrl::parse(&format!("fasp://h/x?port={bad}")),
                Err(Error::InvalidParam { .. })
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        FaspUrl::parse("fasp://h/x?enc=rot13"),
        Err(Error::InvalidParam { .. })
    ));
    assert!(matches!(
        FaspUrl::parse("fasp://h/x?fallback=maybe"),
        Err(Error::InvalidParam { .. })
    ));
    assert_eq!(
        FaspUrl::parse("fasp://h/x?token=a&token=b").unwrap_err(),
        Error::DuplicateParam("token".into())
    );
    assert_eq!(
        FaspUrl::parse("fasp://h:ssh/x").unwrap_err(),
        Error::InvalidSshPort("ssh".into())
    );
    assert_eq!(
        FaspUrl::parse("fasp://h:70000/x").unwrap_err(),
        Error::InvalidSshPort("70000".into())
    );
    assert!(matches!(
        FaspUrl::parse("https://h/x"),
        Err(Error::NotFasp(_))
    ));
    assert!(matches!(FaspUrl::parse("fasp:///x"), Err(Error::NoHost)));
    assert!(matches!(
        FaspUrl::parse("fasp://h/%FF"),
        Err(Error::NotUtf8(_))
    ));
}

#[test]
fn http_base_follows_enc() {
    let base = |q: &str| {
        FaspUrl::parse(&format!("fasp://files.example.com/x?{q}"))
            .unwrap()
            .http_base()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        base("enc=aes128&httpport=8443"),
        "https://files.example.com:8443/aspera/https"
    );
    assert_eq!(
        base("enc=none&httpport=8080"),
        "http://files.example.com:8080/aspera/http"
    );
    // Defaults: a client encrypts unless told enc=none; 443 / 80 without httpport.
    assert_eq!(base(""), "https://files.example.com/aspera/https");
    assert_eq!(base("enc=none"), "http://files.example.com/aspera/http");
    let v6 = FaspUrl::parse("fasp://[::1]/x?enc=none&httpport=8080").unwrap();
    assert_eq!(
        v6.http_base().unwrap().as_str(),
        "http://[::1]:8080/aspera/http"
    );
}

#[test]
fn troubleshooting_step_two() {
    let ok = FaspUrl::parse("fasp://h/x?token=t&fallback=yes&httpport=8443").unwrap();
    assert!(ok.fallback_problems().is_empty());
    let bare = FaspUrl::parse("fasp://h/x").unwrap();
    let problems = bare.fallback_problems();
    assert_eq!(problems.len(), 3);
    assert!(problems[0].contains("token"));
    assert!(problems[1].contains("fallback"));
    assert!(problems[2].contains("httpport"));
}
