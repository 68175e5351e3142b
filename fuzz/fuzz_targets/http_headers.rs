//! The header values the protocol reads (Range, Upload-Metadata, Upload-Checksum,
//! lengths, digests (hex, base64, RFC 9530 dictionaries), entity tags, Host, Transfer-Encoding): never a panic, and what they accept is sound. The first byte
//! picks the parser; the second and third give a file size for ranges.
#![no_main]

use fallback_http as headers;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let (size, text) = match rest {
        [a, b, text @ ..] => (u64::from(u16::from_le_bytes([*a, *b])), text),
        _ => (0, rest),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    match which % 8 {
        0 => {
            if let Ok(Some((first, last))) = headers::byte_range(text, size) {
                assert!(first <= last && last < size, "{text:?} {size}");
            }
        }
        1 => {
            if let Ok(meta) = headers::upload_metadata(text) {
                for (i, (k, _)) in meta.iter().enumerate() {
                    assert!(!k.is_empty() && !k.contains([' ', ',']), "{text:?}");
                    assert!(meta[..i].iter().all(|(other, _)| other != k), "{text:?}");
                }
            }
        }
        2 => {
            let _ = headers::upload_checksum(text);
        }
        3 => {
            if let Some(n) = headers::parse_u64(text) {
                assert_eq!(n.to_string(), text.trim_start_matches('0').to_owned() + if n == 0 { "0" } else { "" });
            }
        }
        4 => {
            let _ = headers::sha256_digest(text);
            let _ = headers::sha256_member(text);
        }
        5 => {
            if headers::valid_host(text.as_bytes()) {
                // Nothing that could split a request line or smuggle a header.
                assert!(!text.contains([' ', '\r', '\n', '/', '?', '#', '@', '\0']), "{text:?}");
            }
        }
        6 => {
            if let headers::TransferCoding::Unsupported(c) =
                headers::transfer_coding(text.split('\n').map(str::as_bytes))
            {
                assert!(!c.is_empty() && c != "chunked", "{text:?}");
            }
        }
        _ => {
            if let Ok(headers::EntityTags::List(tags)) = headers::entity_tags(text) {
                assert!(!tags.is_empty(), "{text:?}");
                for (_, t) in &tags {
                    assert!(t.len() >= 2 && t.starts_with('"') && t.ends_with('"'), "{text:?}");
                }
            }
        }
    }
});
