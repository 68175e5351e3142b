//! Property tests: written documents parse back equal; no input panics the parser.

use fallback_conf::{
    Cipher, Config, Document, FileMode, FilenameHash, Group, HttpServer, Layer, Overwrite,
    PeerDocroot, Secret, TokenCipher, TransferAuth, User, Web,
};
use std::fmt::Write as _;

use proptest::collection::{btree_set, vec};
use proptest::option::of;
use proptest::prelude::*;

/// Text that survives trimming: no surrounding whitespace, not `AS_NULL`.
fn text(re: &'static str) -> impl Strategy<Value = String> {
    re.prop_filter("trimmed and meaningful", |s: &String| {
        !s.is_empty() && s.trim() == s && s != "AS_NULL"
    })
}

fn auth() -> impl Strategy<Value = TransferAuth> {
    prop_oneof![
        Just(TransferAuth::Allow),
        Just(TransferAuth::Deny),
        Just(TransferAuth::Token)
    ]
}

fn cipher() -> impl Strategy<Value = Cipher> {
    prop_oneof![
        Just(Cipher::Any),
        Just(Cipher::None),
        Just(Cipher::Aes128),
        Just(Cipher::Aes256),
        Just(Cipher::Aes192Cfb),
        Just(Cipher::Aes128Gcm),
        Just(Cipher::Aes256Gcm),
    ]
}

fn layer() -> impl Strategy<Value = Layer> {
    (
        (of(auth()), of(auth())),
        (
            of(text(r"[ -~é\t]{1,40}").prop_map(Secret::new)),
            of(prop_oneof![
                Just(TokenCipher::Aes128),
                Just(TokenCipher::Aes192),
                Just(TokenCipher::Aes256)
            ]),
            of(1..=u64::MAX),
            of(prop_oneof![
                Just(FilenameHash::Sha1),
                Just(FilenameHash::Md5),
                Just(FilenameHash::Sha256),
                Just(FilenameHash::Lzw)
            ]),
        ),
        (
            of(text(r"/[a-zA-Z0-9 _.&<>'/-]{0,30}")),
            of(any::<bool>()),
            of(any::<bool>()),
            of(any::<bool>()),
        ),
        (
            of(cipher()),
            of(cipher()),
            of(vec((text(r"[!-~]{1,40}"), 0i64..4_000_000_000), 1..3)),
        ),
        (
            vec(
                (any::<[u8; 4]>(), text(r"/[a-z0-9_/]{0,12}(\$\(name\))?")),
                0..3,
            ),
            of(vec(text(r"!?[a-z*./:]{1,12}"), 1..3)),
            of(prop_oneof![Just(Overwrite::Allow), Just(Overwrite::Deny)]),
            of(0u32..=0o777),
            of(0u32..=0o3777),
            of(of(1..=u64::MAX)),
        ),
    )
        .prop_map(
            |(
                (transfer_in, transfer_out),
                (token_key, token_cipher, token_life_seconds, filename_hash),
                (docroot, read_allowed, write_allowed, dir_allowed),
                (allowed_cipher, user_value, retired),
                (peers, restrictions, overwrite, fmode, dmode, cap),
            )| Layer {
                retired_keys: retired.map(|keys| {
                    keys.into_iter()
                        .map(|(secret, at)| fallback_conf::RetiredKey {
                            secret: Secret::new(secret),
                            accept_until: at,
                            accept_until_text: jiff::Timestamp::from_second(at)
                                .unwrap()
                                .to_string(),
                        })
                        .collect()
                }),
                peer_docroots: {
                    let mut seen = std::collections::HashSet::new();
                    peers
                        .into_iter()
                        .filter(|(ip, _)| seen.insert(*ip))
                        .map(|(ip, path)| PeerDocroot {
                            peer_ip: std::net::IpAddr::from(ip),
                            path,
                        })
                        .collect()
                },
                restrictions,
                overwrite,
                file_create_mode: fmode.map(FileMode),
                file_create_grant_mask: fmode.map(FileMode),
                directory_create_mode: dmode.map(FileMode),
                directory_create_grant_mask: dmode.map(FileMode),
                in_rate_cap: cap,
                out_rate_cap: cap,
                transfer_in,
                transfer_out,
                token_key,
                token_cipher,
                token_life_seconds,
                filename_hash,
                docroot,
                read_allowed,
                write_allowed,
                dir_allowed,
                allowed_cipher,
                user_value,
            },
        )
}

fn http_server() -> impl Strategy<Value = HttpServer> {
    (
        (
            of(any::<bool>()),
            of(1..=u16::MAX),
            of(any::<bool>()),
            of(1..=u16::MAX),
        ),
        (
            of(text(r"[0-9a-f.:]{1,20}")),
            of(text(r"/[a-z/._-]{1,20}")),
            of(text(r"/[a-z/._-]{1,20}")),
        ),
        (
            of(any::<bool>()),
            of(any::<u64>()),
            of(any::<u32>()),
            of(any::<bool>()),
        ),
        of(text(r"[a-z0-9.:]{1,12}")),
    )
        .prop_map(
            |(
                (enable_http, http_port, enable_https, https_port),
                (bind_address, cert_file, key_file),
                (restartable_transfers, session_activity_timeout, listen_backlog, persistent),
                mgmt_address,
            )| HttpServer {
                enable_http,
                http_port,
                enable_https,
                https_port,
                bind_address,
                cert_file,
                key_file,
                restartable_transfers,
                session_activity_timeout,
                listen_backlog,
                persistent_connection: persistent,
                mgmt_address,
            },
        )
}

fn web() -> impl Strategy<Value = Web> {
    (
        of(any::<bool>()),
        of(1..=u16::MAX),
        of(1..=u16::MAX),
        of(1..=u16::MAX),
        of(1..=u16::MAX),
    )
        .prop_map(
            |(http_fallback, http_fallback_port, https_fallback_port, ssh_port, udp_port)| Web {
                http_fallback,
                http_fallback_port,
                https_fallback_port,
                ssh_port,
                udp_port,
            },
        )
}

fn names() -> impl Strategy<Value = Vec<String>> {
    btree_set(text(r"[A-Za-z0-9_.\\@-]{1,12}"), 0..6).prop_map(|s| s.into_iter().collect())
}

fn document() -> impl Strategy<Value = Document> {
    (
        http_server(),
        of(web()),
        layer(),
        names().prop_flat_map(|n| {
            let len = n.len();
            (Just(n), vec(layer(), len))
        }),
        names().prop_flat_map(|n| {
            let len = n.len();
            (Just(n), vec((of(any::<u32>()), layer()), len))
        }),
    )
        .prop_map(|(http_server, web, default, (un, ul), (gn, gl))| Document {
            http_server,
            web,
            default,
            users: un
                .into_iter()
                .zip(ul)
                .map(|(name, settings)| User { name, settings })
                .collect(),
            groups: gn
                .into_iter()
                .zip(gl)
                .map(|(name, (precedence, settings))| Group {
                    name,
                    precedence,
                    settings,
                })
                .collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn written_documents_parse_back_equal(doc in document()) {
        let xml = doc.to_xml();
        let conf = Config::parse(&xml).map_err(|e| TestCaseError::fail(format!("{e}\n{xml}")))?;
        prop_assert_eq!(conf.document(), &doc, "{}", xml);
        // Writing is parsing's inverse: nothing is reported as unknown or malformed.
        for d in conf.diagnostics() {
            prop_assert!(
                !matches!(
                    d.code,
                    fallback_conf::Code::UnknownElement
                        | fallback_conf::Code::InvalidValue
                        | fallback_conf::Code::InvalidPort
                        | fallback_conf::Code::InvalidBool
                        | fallback_conf::Code::InvalidInteger
                        | fallback_conf::Code::DuplicateElement
                ),
                "{} in\n{}", d, xml
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..2048)) {
        if let Ok(conf) = Config::parse_bytes(&bytes) {
            let _ = conf.user("u", &["g"]);
            let _ = conf.server();
        }
    }

    #[test]
    fn damaged_documents_never_panic(
        doc in document(),
        cut in any::<prop::sample::Index>(),
        insert in any::<prop::sample::Index>(),
        junk in r"[<>&;/!?\[\]a-zA-Z#x0-9]{0,8}",
    ) {
        let xml = doc.to_xml();
        let at = |i: &prop::sample::Index| {
            let mut p = i.index(xml.len() + 1);
            while !xml.is_char_boundary(p) { p -= 1; }
            p
        };
        let mut damaged = xml[..at(&cut)].to_owned();
        let i = at(&insert).min(damaged.len());
        let i = (0..=i).rev().find(|&i| damaged.is_char_boundary(i)).unwrap_or(0);
        damaged.insert_str(i, &junk);
        if let Ok(conf) = Config::parse(&damaged) {
            for d in conf.diagnostics() {
                let _ = d.to_string();
            }
            let _ = conf.user("x", &[]);
        }
    }
}

/// One part of an `s3://` URI, encoded as the product asks (every byte that is not
/// unreserved, as `%XX`).
fn encode(part: &str) -> String {
    part.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

proptest! {
    /// Any credentials, bucket and prefix written URL-encoded read back exactly, and
    /// neither the id nor the secret is in anything printed.
    #[test]
    fn s3_docroots_read_back_and_never_show_credentials(
        id in "[A-Z0-9]{16,20}",
        secret in "[ -~]{20,40}",
        host in prop_oneof![Just("s3.amazonaws.com".to_owned()), "[a-z]{1,8}(\\.[a-z]{1,8}){0,2}"],
        port in of(1u16..),
        bucket in "[a-z0-9][a-z0-9.-]{2,20}",
        prefix in vec("[ -.0-~éü日本]{1,12}", 0..4),
        class in of(prop::sample::select(fallback_conf::STORAGE_CLASSES)),
        sse in any::<bool>(),
    ) {
        prop_assume!(prefix.iter().all(|s| s != "." && s != ".." && !s.contains("$(")));
        let mut uri = format!("s3://{}:{}@{host}", encode(&id), encode(&secret));
        if let Some(p) = port {
            write!(uri, ":{p}").unwrap();
        }
        write!(uri, "/{}", encode(&bucket)).unwrap();
        for s in &prefix {
            write!(uri, "/{}", encode(s)).unwrap();
        }
        let mut q = Vec::new();
        if let Some(c) = class {
            q.push(format!("storage-class={c}"));
        }
        if sse {
            q.push("server-side-encryption=AES256".to_owned());
        }
        if !q.is_empty() {
            uri.push('?');
            uri.push_str(&q.join("&"));
        }
        let r = fallback_conf::S3Root::parse(&uri).unwrap();
        let c = r.credentials.as_ref().unwrap();
        prop_assert_eq!(c.access_key_id.expose(), id.as_str());
        prop_assert_eq!(c.secret_access_key.expose(), secret.as_str());
        prop_assert_eq!(&r.bucket, &bucket);
        prop_assert_eq!(&r.prefix, &prefix.join("/"));
        prop_assert_eq!(r.storage_class.as_deref(), class);
        prop_assert_eq!(r.is_aws(), host == "s3.amazonaws.com" && port.is_none());
        let shown = format!("{r} {r:?}");
        prop_assert!(!shown.contains(&id) && !shown.contains(&secret), "{}", shown);
        // A damaged URI is refused or read, never a panic, and never echoes the secret.
        for cut in [uri.len() / 3, uri.len() / 2, uri.len() - 1] {
            if let Some(d) = uri.get(..cut)
                && let Err(e) = fallback_conf::S3Root::parse(d)
            {
                prop_assert!(!e.contains(&secret) && !e.contains(&id), "{}", e);
            }
        }
    }
}
