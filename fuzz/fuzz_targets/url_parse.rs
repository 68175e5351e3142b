//! FASP URL parsing: any text parses or is refused, never a panic; what parses builds
//! back to text that parses to the same model.
#![no_main]

use fallback_url::FaspUrl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = FaspUrl::parse(text) {
        let _ = url.http_base();
        let _ = url.tags();
        let _ = url.fallback_problems();
        let built = url.to_string();
        let back = FaspUrl::parse(&built).expect("built URL parses");
        assert_eq!(back, url, "{text:?} -> {built:?}");
    }
});
