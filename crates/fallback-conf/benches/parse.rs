//! Parsing a large aspera.conf: 10,000 users, about 1 MiB.
//!
//! The peer, measured in the same run, is a bare quick-xml pass over the same text
//! (tokenize only, nothing kept): the floor any quick-xml based parser stands on.
//! The report to read is the ratio between the two.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fallback_conf::{Config, Document, Group, Layer, TransferAuth, User};

fn big_conf(users: usize) -> String {
    let mut doc = Document::default();
    doc.http_server.enable_http = Some(true);
    doc.http_server.enable_https = Some(true);
    doc.default.transfer_in = Some(TransferAuth::Token);
    doc.default.transfer_out = Some(TransferAuth::Token);
    doc.default.token_key = Some(fallback_conf::Secret::new("bench-secret-0123456789abcdef"));
    doc.default.docroot = Some("/srv/data".into());
    for g in 0..20 {
        doc.groups.push(Group {
            name: format!("group{g}"),
            precedence: Some(g),
            settings: Layer {
                token_life_seconds: Some(3600 + u64::from(g)),
                ..Layer::default()
            },
        });
    }
    for u in 0..users {
        doc.users.push(User {
            name: format!("user{u:05}"),
            settings: Layer {
                docroot: Some(format!("/srv/users/user{u:05}")),
                transfer_out: Some(TransferAuth::Allow),
                ..Layer::default()
            },
        });
    }
    doc.to_xml()
}

fn bench(c: &mut Criterion) {
    let text = big_conf(10_000);
    assert!(text.len() > 1 << 20, "about 1 MiB: {} bytes", text.len());
    let conf = Config::parse(&text).expect("the generated file parses");
    assert_eq!(conf.document().users.len(), 10_000);

    let mut g = c.benchmark_group("aspera.conf 10k users");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("fallback-conf parse+validate", |b| {
        b.iter(|| Config::parse(black_box(&text)).expect("parses"));
    });
    g.bench_function("peer: quick-xml tokenize only", |b| {
        b.iter(|| {
            let mut r = quick_xml::Reader::from_str(black_box(&text));
            let mut n = 0usize;
            loop {
                match r.read_event().expect("well-formed") {
                    quick_xml::events::Event::Eof => break,
                    _ => n += 1,
                }
            }
            n
        });
    });
    g.bench_function("effective settings of one user", |b| {
        b.iter(|| conf.user(black_box("user09999"), &["group3", "group7"]));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
