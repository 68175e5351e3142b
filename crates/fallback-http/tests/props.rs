//! The header parsers under random input: never a panic, answers within the file,
//! round trips.

use base64::Engine as _;
use fallback_http::{Unsatisfiable, byte_range, parse_u64, sha256_member, upload_metadata};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// A `sha-256` member among others, in any order and spacing, is found exactly;
    /// any text is answered without a panic.
    #[test]
    fn digest_dictionaries_round_trip(
        digest in proptest::array::uniform32(any::<u8>()),
        others in proptest::collection::vec(("[a-z][a-z0-9-]{0,8}", proptest::collection::vec(any::<u8>(), 0..64)), 0..4),
        before in 0usize..4,
        junk in "\\PC{0,60}",
    ) {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut members: Vec<String> = others
            .iter()
            .filter(|(k, _)| k != "sha-256")
            .map(|(k, v)| format!("{k}=:{}:", b64.encode(v)))
            .collect();
        let at = before.min(members.len());
        members.insert(at, format!("sha-256=:{}:", b64.encode(digest)));
        prop_assert_eq!(sha256_member(&members.join(" ,  ")), Ok(Some(digest)));
        let _ = sha256_member(&junk);
    }

    /// Any text: an answer, never a panic, and a served range lies in the file.
    #[test]
    fn any_range_header_is_answered_within_the_file(v in "\\PC{0,60}", size in 0u64..1000) {
        if let Ok(Some((a, b))) = byte_range(&v, size) {
            prop_assert!(a <= b && b < size);
        }
    }

    /// A well-formed single range agrees with the RFC 9110 model.
    #[test]
    fn single_ranges_follow_the_model(
        first in proptest::option::of(0u64..3000),
        last in proptest::option::of(0u64..3000),
        size in 0u64..2000,
    ) {
        let text = format!(
            "bytes={}-{}",
            first.map(|n| n.to_string()).unwrap_or_default(),
            last.map(|n| n.to_string()).unwrap_or_default()
        );
        let model = match (first, last) {
            (None, None | Some(0)) => Err(Unsatisfiable),
            (None, Some(_)) if size == 0 => Ok(None),
            (None, Some(n)) => Ok(Some((size.saturating_sub(n), size - 1))),
            (Some(a), Some(b)) if b < a => Err(Unsatisfiable),
            (Some(_), _) if size == 0 => Ok(None),
            (Some(a), _) if a >= size => Err(Unsatisfiable),
            (Some(a), b) => Ok(Some((a, b.unwrap_or(u64::MAX).min(size - 1)))),
        };
        prop_assert_eq!(byte_range(&text, size), model, "{}", text);
    }

    /// Numbers: every u64 of at most 19 digits reads back; signs and spaces never.
    #[test]
    fn numbers_read_back(n in 0u64..10_000_000_000_000_000_000, junk in "[+\\- ]") {
        prop_assert_eq!(parse_u64(&n.to_string()), Some(n));
        prop_assert_eq!(parse_u64(&format!("{junk}{n}")), None);
    }

    /// Metadata written the tus way parses back to itself.
    #[test]
    fn metadata_round_trips(pairs in proptest::collection::btree_map("[a-z_]{1,12}", proptest::option::of("\\PC{0,30}"), 0..6)) {
        let text = pairs
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k} {}", base64::engine::general_purpose::STANDARD.encode(v)),
                None => k.clone(),
            })
            .collect::<Vec<_>>()
            .join(",");
        let want: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect();
        prop_assert_eq!(upload_metadata(&text).unwrap(), want);
    }

    /// Any bytes: a Host value accepted holds nothing that could end a field,
    /// start a path, or carry credentials.
    #[test]
    fn accepted_hosts_are_plain(v in proptest::collection::vec(any::<u8>(), 0..40)) {
        if fallback_http::valid_host(&v) {
            prop_assert!(!v.iter().any(|b| b" \t\r\n/?#@\0\\".contains(b) || *b >= 0x80), "{v:?}");
        }
    }

    /// Names, IPv4 and IPv6 literals, with or without a port, are accepted.
    #[test]
    fn well_formed_hosts_are_accepted(
        name in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\\.[a-z0-9]{1,10}){0,3}",
        v6 in "[0-9a-f]{1,4}(:[0-9a-f]{0,4}){2,7}",
        port in proptest::option::of(0u16..),
    ) {
        use fallback_http::valid_host;
        let p = port.map(|p| format!(":{p}")).unwrap_or_default();
        let good = [format!("{name}{p}"), format!("[{v6}]{p}")];
        let bad = [format!("{name} {p}"), format!("user@{name}{p}"), format!("{name}/x")];
        for g in &good {
            prop_assert!(valid_host(g.as_bytes()), "{:?}", g);
        }
        for b in &bad {
            prop_assert!(!valid_host(b.as_bytes()), "{:?}", b);
        }
    }

    /// Transfer codings: `chunked` alone is decoded; anything else before it is
    /// not implemented; `chunked` not last, twice, or a malformed list is invalid.
    #[test]
    fn transfer_codings_follow_rfc_9112(
        others in proptest::collection::vec("(gzip|deflate|compress|x-[a-z]{1,5}|Chunked|CHUNKED)", 0..3),
        chunked_last in any::<bool>(),
        split in any::<bool>(),
    ) {
        use fallback_http::{TransferCoding, transfer_coding};
        let mut all = others.clone();
        if chunked_last {
            all.push("chunked".to_owned());
        }
        let joined = all.join(", ");
        let got = if split {
            transfer_coding(all.iter().map(String::as_bytes))
        } else {
            transfer_coding([joined.as_bytes()])
        };
        let lower: Vec<String> = all.iter().map(|s| s.to_ascii_lowercase()).collect();
        let want = if lower.is_empty() || lower.last().map(String::as_str) != Some("chunked") {
            TransferCoding::Invalid
        } else if lower.len() == 1 {
            TransferCoding::Chunked
        } else if let Some(o) = lower.iter().find(|c| *c != "chunked") {
            TransferCoding::Unsupported(o.clone())
        } else {
            TransferCoding::Invalid
        };
        prop_assert_eq!(got, want, "{:?}", joined);
    }
}
