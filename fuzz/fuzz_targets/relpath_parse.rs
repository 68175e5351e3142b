//! The request path canonicaliser: never a panic; what it accepts has only normal
//! segments and prints back to itself.
#![no_main]

use fallback_engine::RelPath;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((p, _)) = RelPath::parse_encoded_dir(text) {
        for s in p.segments() {
            assert!(!s.is_empty() && s != "." && s != "..", "{text:?}");
            assert!(!s.contains(['/', '\\', ':', '\0', '%']), "{text:?}");
        }
        assert_eq!(RelPath::parse(&p.to_string()).ok(), Some(p.clone()));
        assert!(p.to_fs_path().is_relative());
    }
});
