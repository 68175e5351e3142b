//! Known-answer vectors in fixtures/tokens/vectors.json, for other implementations to
//! check themselves against. Regenerate with `FALLBACK_BLESS=1 cargo test -p
//! fallback-token vectors` only when the format version changes.

use std::path::PathBuf;
use std::time::Duration;

use fallback_token::{Form, Key, KeyRing, Token};
use serde_json::{Value, json};

use crate::{at, now};

fn file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tokens/vectors.json")
}

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).unwrap();
    out
}

fn form(s: &str) -> Form {
    match s {
        "signed" => Form::Signed,
        "sealed-aes128" => Form::SealedAes128,
        "sealed-aes192" => Form::SealedAes192,
        "sealed-aes256" => Form::SealedAes256,
        other => panic!("unknown form {other}"),
    }
}

/// The inputs of each vector; outputs are computed and compared (or blessed).
fn inputs() -> Vec<Value> {
    let base = |name: &str, f: &str| {
        json!({
            "name": name,
            "secret": "change-me-secret-key-for-http fallback",
            "form": f,
            "user": "alice",
            "direction": "download",
            "paths": ["/projects/2026", "/shared/readme.txt", "/a/./b//c/"],
            "issued_at": 1_790_000_000u64,
            "lifetime_seconds": 3600,
            "nonce": "000102030405060708090a0b0c0d0e0f",
            "seal_nonce": "a0a1a2a3a4a5a6a7a8a9aaab",
        })
    };
    let mut v = vec![
        base("download, signed", "signed"),
        base("download, sealed aes-128-gcm", "sealed-aes128"),
        base("download, sealed aes-192-gcm", "sealed-aes192"),
        base("download, sealed aes-256-gcm", "sealed-aes256"),
    ];
    let mut up = base("upload, signed, named key, non-ASCII user", "signed");
    up["direction"] = json!("upload");
    up["paths"] = json!(["/incoming"]);
    up["user"] = json!("DOMAIN\\jürgen");
    up["key_id"] = json!("2026-11");
    up["lifetime_seconds"] = json!(86_400);
    v.push(up);
    v
}

#[test]
fn known_answer_vectors() {
    let mut computed = Vec::new();
    for mut input in inputs() {
        let mut key = Key::derive(
            input["secret"].as_str().unwrap(),
            form(input["form"].as_str().unwrap()),
        )
        .unwrap();
        if let Some(id) = input["key_id"].as_str() {
            key = key.with_id(id).unwrap();
        }
        let paths: Vec<&str> = input["paths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        let user = input["user"].as_str().unwrap();
        let builder = match input["direction"].as_str().unwrap() {
            "upload" => Token::upload(user, paths[0]),
            _ => Token::download(user, &paths),
        }
        .issued_at(at(input["issued_at"].as_u64().unwrap()))
        .valid_for(Duration::from_secs(
            input["lifetime_seconds"].as_u64().unwrap(),
        ))
        .nonce(unhex(input["nonce"].as_str().unwrap()))
        .seal_nonce(unhex(input["seal_nonce"].as_str().unwrap()));
        let token = builder.issue(&key).unwrap();
        let claims = KeyRing::from(key.clone())
            .decode(&token, &now(input["issued_at"].as_u64().unwrap()))
            .unwrap();
        input["expected"] = json!({
            "key_id": key.id(),
            "claims": claims,
            "token": token,
        });
        computed.push(input);
    }
    let text = serde_json::to_string_pretty(&computed).unwrap() + "\n";
    if std::env::var_os("FALLBACK_BLESS").is_some() {
        std::fs::write(file(), &text).unwrap();
    }
    let stored = std::fs::read_to_string(file())
        .expect("fixtures/tokens/vectors.json is missing; run with FALLBACK_BLESS=1 once");
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(
        stored,
        serde_json::from_str::<Value>(&text).unwrap(),
        "token format changed"
    );
}
