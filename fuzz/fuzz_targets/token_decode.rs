//! Token decoding: any text is refused or accepted, never a panic; what opens under a
//! key opens identically again and agrees with its envelope. The keys use the secret of
//! the known-answer vectors, whose tokens seed the corpus, so mutations reach the MAC
//! and claim parsing rather than stopping at an unknown key id.
#![no_main]

use std::sync::LazyLock;

use fallback_token::{Form, Key, KeyRing, VerifyOptions, envelope, inspect_unverified};
use libfuzzer_sys::fuzz_target;

static RINGS: LazyLock<Vec<KeyRing>> = LazyLock::new(|| {
    [Form::Signed, Form::SealedAes128, Form::SealedAes256]
        .into_iter()
        .map(|f| KeyRing::from(Key::derive("change-me-secret-key-for-http fallback", f).expect("key")))
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for candidate in [text.to_owned(), format!("fbt1_{text}")] {
        let _ = envelope(&candidate);
        let _ = inspect_unverified(&candidate);
        for ring in RINGS.iter() {
            if let Ok(claims) = ring.open(&candidate) {
                assert_eq!(ring.open(&candidate).ok(), Some(claims.clone()));
                let env = envelope(&candidate).expect("an opened token has an envelope");
                assert_eq!(env.key_id, claims.key_id);
                assert_eq!(env.form, claims.form);
                assert!(claims.expires_at > claims.issued_at || ring.decode(&candidate, &VerifyOptions::default()).is_err());
            }
            let _ = ring.decode(&candidate, &VerifyOptions::default());
        }
    }
});
