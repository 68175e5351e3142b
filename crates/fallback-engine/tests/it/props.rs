//! The canonicaliser under random input.

use fallback_engine::{PathError, RESERVED, RelPath};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever the input, an accepted path has only normal segments, and its printed
    /// form parses back to itself.
    #[test]
    fn accepted_paths_are_normal_and_stable(raw in "(/|%2[eEfF]|%25|%5[cC]|%00|\\.|\\.\\.|[a-z]|é|:|\\\\|%C3%A9|%FF){0,12}") {
        if let Ok((p, _)) = RelPath::parse_encoded_dir(&raw) {
            for s in p.segments() {
                prop_assert!(!s.is_empty() && s != "." && s != "..");
                prop_assert!(!s.contains(['/', '\\', ':', '\0', '%']));
            }
            prop_assert!(p.segments().first().is_none_or(|s| s != RESERVED));
            let printed = p.to_string();
            prop_assert_eq!(RelPath::parse(&printed).unwrap(), p.clone());
            let fs = p.to_fs_path();
            prop_assert!(fs.is_relative());
            prop_assert!(fs.components().all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir)));
        }
    }

    #[test]
    fn any_text_is_accepted_or_refused_never_panics(raw in "\\PC{0,200}") {
        let _ = RelPath::parse_encoded(&raw);
        let _ = RelPath::parse(&raw);
    }

    /// Encoding a dot segment any way never gets it through.
    #[test]
    fn encoded_dot_segments_are_refused(prefix in "[a-z]{1,5}", dots in prop::sample::select(vec!["..", "%2e%2e", "%2E%2e", ".%2e", "%2e."])) {
        let raw = format!("/{prefix}/{dots}/x");
        prop_assert_eq!(RelPath::parse_encoded(&raw), Err(PathError::DotSegment));
    }
}
