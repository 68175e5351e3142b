//! Token verification throughput: a download token with 5 paths.
//!
//! Peer measured in the same run: one bare HMAC-SHA256 over the same number of bytes
//! with a pre-keyed state, the floor under any HMAC-based token check.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fallback_token::{Access, Form, Key, KeyRing, Token, VerifyOptions};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const PATHS: [&str; 5] = [
    "/projects/2026/q4",
    "/projects/2026/q3/report.pdf",
    "/shared/templates",
    "/users/alice/inbox",
    "/datasets/genome/run-42.bam",
];

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("token verify (5 paths)");
    g.throughput(Throughput::Elements(1));
    for form in [Form::Signed, Form::SealedAes128, Form::SealedAes256] {
        let key = Key::derive("bench-secret-0123456789abcdef", form).expect("key");
        let token = Token::download("alice", &PATHS)
            .valid_for(Duration::from_hours(1))
            .issue(&key)
            .expect("token");
        let ring = KeyRing::from(key);
        let opts = VerifyOptions::default();
        let access = Access::download("alice", "/datasets/genome/run-42.bam");
        g.bench_function(format!("fallback-token {form}"), |b| {
            b.iter(|| {
                ring.verify_with(black_box(&token), &access, &opts)
                    .expect("valid")
            });
        });
        if form == Form::Signed {
            let len = token.len() * 3 / 4;
            let msg = vec![7u8; len];
            let mac = Hmac::<Sha256>::new_from_slice(&[1u8; 32]).expect("key");
            g.bench_function(format!("peer: bare HMAC-SHA256 of {len} bytes"), |b| {
                b.iter(|| {
                    let mut m = mac.clone();
                    m.update(black_box(&msg));
                    m.finalize()
                });
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
