//! The `s3://` docroot parser: never a panic; what it accepts prints back (credentials
//! redacted) to a URI that parses to the same bucket, prefix and options, with no `.`
//! or `..` segment in the prefix.
#![no_main]

use fallback_conf::S3Root;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(root) = S3Root::parse(text) else {
        return;
    };
    for s in root.prefix.split('/') {
        assert!(s != "." && s != "..", "{text:?}");
    }
    let shown = root.to_string();
    // The credentials are never printed: the form with them is the form without them,
    // plus the marker.
    let mut bare = root.clone();
    bare.credentials = None;
    let bare_shown = bare.to_string();
    if root.credentials.is_some() {
        assert_eq!(shown, bare_shown.replacen("s3://", "s3://<redacted>@", 1));
    } else {
        assert_eq!(shown, bare_shown);
    }
    let again = S3Root::parse(&bare_shown).expect("printed form parses");
    assert_eq!(again, bare, "{text:?}");
});
