//! The part / tail bookkeeping against a model of the bucket: requests cut anywhere,
//! crashes between storing a step and recording it, resumes from what was recorded.

// Test helpers panic on purpose: a panic is how a failed expectation is reported.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use fallback_s3::parts::{MAX_PARTS, Progress, Step, part_size, plan};
use proptest::prelude::*;

/// What the bucket holds: part number -> the stream range stored under it (a part
/// stored again replaces it), tail version -> its range.
#[derive(Default)]
struct Bucket {
    parts: HashMap<u32, (u64, u64)>,
    tails: HashMap<u32, (u64, u64)>,
}

/// The recorded progress describes exactly what the bucket holds: parts 1..n in
/// order, contiguous from byte 0, all of the part size but a completed upload's last,
/// and the tail right after them, shorter than a part.
fn check(
    progress: &Progress,
    bucket: &Bucket,
    ps: u64,
    completed: bool,
) -> Result<(), TestCaseError> {
    let mut at = 0;
    for (i, p) in progress.parts.iter().enumerate() {
        prop_assert_eq!(p.number as usize, i + 1);
        prop_assert_eq!(bucket.parts.get(&p.number).copied(), Some((at, p.size)));
        let last = i + 1 == progress.parts.len();
        if !(completed && last) {
            prop_assert_eq!(p.size, ps);
        }
        prop_assert!(p.size > 0);
        at += p.size;
    }
    if let Some(t) = progress.tail {
        prop_assert!(!completed);
        prop_assert!(t.size > 0 && t.size < ps);
        prop_assert_eq!(bucket.tails.get(&t.version).copied(), Some((at, t.size)));
    }
    prop_assert!(progress.parts.len() as u64 <= MAX_PARTS);
    Ok(())
}

/// Runs an upload of `length` through requests of `chunks` bytes (each cut to what
/// is left), crashing request i after `crashes[i]` recorded steps when given; resumes
/// from the recorded offset until done. Returns the final progress.
fn run(
    length: u64,
    deferred: bool,
    chunks: &[u64],
    crashes: &[Option<usize>],
) -> Result<Progress, TestCaseError> {
    let ps = part_size((!deferred).then_some(length));
    let mut progress = Progress::default();
    let mut bucket = Bucket::default();
    let mut i = 0;
    while progress.offset() < length || (length == 0 && i == 0) {
        let offset = progress.offset();
        let c = chunks[i % chunks.len()].min(length - offset);
        let completes = offset + c == length;
        let start = progress.in_parts();
        let steps = plan(&progress, offset + c - start, ps, completes).unwrap();
        let crash = crashes.get(i).copied().flatten();
        let mut cursor = start;
        for (k, step) in steps.iter().enumerate() {
            match *step {
                Step::Part { number, len } => {
                    bucket.parts.insert(number, (cursor, len));
                }
                Step::Tail { len } => {
                    bucket
                        .tails
                        .insert(progress.tail_versions + 1, (cursor, len));
                }
            }
            if crash == Some(k) {
                break; // stored, not recorded
            }
            let len = match *step {
                Step::Part { len, .. } | Step::Tail { len } => len,
            };
            progress.apply(*step, "etag");
            cursor += len;
            if matches!(step, Step::Part { .. }) {
                cursor = progress.in_parts();
            }
        }
        let done = progress.offset() == length && crash.is_none_or(|k| k >= steps.len());
        check(&progress, &bucket, ps, done && completes)?;
        // Never more recorded than sent; a crash loses at most this request's bytes.
        prop_assert!(progress.offset() <= offset + c);
        prop_assert!(progress.offset() >= start.min(offset));
        i += 1;
        prop_assert!(i < 100_000, "no progress");
        if length == 0 {
            break;
        }
    }
    // Complete: the parts cover the stream exactly once, in order.
    let covered: u64 = progress.parts.iter().map(|p| p.size).sum();
    prop_assert_eq!(covered, length);
    prop_assert!(progress.tail.is_none() || length == 0);
    Ok(progress)
}

proptest! {
    #[test]
    fn any_cut_and_any_crash_leaves_a_resumable_upload_and_then_the_whole_stream(
        length in 0u64..(200 << 20),
        deferred in any::<bool>(),
        chunks in proptest::collection::vec(1u64..(40 << 20), 1..6),
        crashes in proptest::collection::vec(proptest::option::weighted(0.3, 0usize..4), 0..8),
    ) {
        run(length, deferred, &chunks, &crashes)?;
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    /// However small the requests, an upload of a declared length stays within S3's
    /// 10,000 parts: every part but the last is the full part size.
    #[test]
    fn large_uploads_cut_small_stay_within_the_part_limit(
        length in (100u64 << 30)..(400u64 << 30),
        chunk in (5u64 << 20)..(64u64 << 20),
    ) {
        let ps = part_size(Some(length));
        let mut progress = Progress::default();
        let mut offset = 0u64;
        while offset < length {
            let c = chunk.min(length - offset);
            let start = progress.in_parts();
            let steps = plan(&progress, offset + c - start, ps, offset + c == length).unwrap();
            for s in &steps {
                progress.apply(*s, "e");
            }
            offset += c;
        }
        prop_assert_eq!(progress.offset(), length);
        prop_assert!(progress.parts.len() as u64 <= MAX_PARTS);
    }
}

#[test]
fn a_request_with_nothing_new_stores_nothing() {
    let mut p = Progress::default();
    p.apply(Step::Tail { len: 100 }, "");
    assert!(plan(&p, 100, part_size(None), false).unwrap().is_empty());
    assert_eq!(
        plan(&p, 100, part_size(None), true).unwrap(),
        [Step::Part {
            number: 1,
            len: 100
        }]
    );
}
