//! Which server certificates the client trusts: the system's roots, plus `--cacert`,
//! or only the keys given with `--pin`.
//!
//! A `--cacert` file may hold a CA, or the server's own self-signed certificate (made
//! the usual way, `openssl req -x509`, it says `CA:TRUE`, which `WebPKI` refuses as a
//! server certificate): then exactly that certificate is trusted for the names it
//! carries while it is valid, as curl does.
//!
//! A pin (`--pin sha256:BASE64`, the SHA-256 of the certificate's public key, its
//! `SubjectPublicKeyInfo`, as curl's `--pinnedpubkey` and HPKP write it) trusts that
//! key alone, as SSH trusts a known host key: whatever the chain, names and dates, a
//! server whose key matches no pin is refused, and one whose key matches is accepted
//! once it proves it holds the key (the handshake signature is always checked).
//! `fallback doctor` prints a server's pin.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::{Error, Result};

/// A pin: the SHA-256 of a certificate's `SubjectPublicKeyInfo`.
pub type Pin = [u8; 32];

/// Parses `sha256:BASE64` (also curl's `sha256//BASE64`) or `sha256:` and 64 hex
/// digits (colons allowed, as fingerprints are often printed).
pub fn parse_pin(s: &str) -> std::result::Result<Pin, String> {
    use base64::Engine as _;
    let why = || {
        format!(
            "{s:?} is not a pin: write sha256: and the SHA-256 of the server's public key \
             in base64 (`fallback doctor URL` prints it)"
        )
    };
    let v = s
        .strip_prefix("sha256//")
        .or_else(|| s.strip_prefix("sha256:"))
        .ok_or_else(why)?
        .trim();
    let hexed: String = v.chars().filter(|c| *c != ':').collect();
    let bytes = if hexed.len() == 64 && hexed.chars().all(|c| c.is_ascii_hexdigit()) {
        hex::decode(&hexed).map_err(|_| why())?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(v)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(v))
            .map_err(|_| why())?
    };
    Pin::try_from(bytes.as_slice()).map_err(|_| why())
}

/// The pin of a DER certificate, if it parses.
pub fn pin_of(der: &[u8]) -> Option<Pin> {
    use sha2::Digest as _;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(sha2::Sha256::digest(cert.tbs_certificate.subject_pki.raw).into())
}

/// How a pin is written (`sha256:BASE64`).
pub fn show_pin(pin: &Pin) -> String {
    use base64::Engine as _;
    format!(
        "sha256:{}",
        base64::engine::general_purpose::STANDARD.encode(pin)
    )
}

/// The TLS configuration for `--cacert FILE` and `--pin`s (pins, when given, decide
/// alone).
pub(crate) fn client_config(ca: Option<&Path>, pins: &[Pin]) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let bad = |e: &dyn std::fmt::Display| match ca {
        Some(ca) => Error::Tls(format!("{}: {e}", ca.display())),
        None => Error::Tls(e.to_string()),
    };
    let certs: Vec<CertificateDer<'static>> = match ca {
        Some(ca) => {
            let certs: Vec<_> = CertificateDer::pem_file_iter(ca)
                .map_err(|e| bad(&e))?
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| bad(&e))?;
            if certs.is_empty() {
                return Err(bad(&"no certificate in it"));
            }
            certs
        }
        None => Vec::new(),
    };
    let chain = rustls_platform_verifier::Verifier::new_with_extra_roots(
        certs.iter().cloned(),
        Arc::clone(&provider),
    )
    .map_err(|e| bad(&e))?;
    let verifier = Arc::new(AnchorOrExact {
        chain,
        exact: certs,
        pins: pins.to_vec(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // The client speaks HTTP/1.1 only (see `http::build_client`).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Why a pinned connection was refused (in rustls's error, so it reads as a TLS
/// refusal, which trying again cannot fix).
#[derive(Debug)]
struct PinMismatch(String);

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PinMismatch {}

/// A chain to the system roots or a `--cacert` CA; failing that, a server certificate
/// that is byte for byte one of the `--cacert` certificates, for the name asked and
/// within its validity. Handshake signatures are always checked.
///
/// With pins, only the pinned keys instead (`chain` then checks handshake signatures
/// only, which prove the server holds the key).
#[derive(Debug)]
struct AnchorOrExact {
    chain: rustls_platform_verifier::Verifier,
    exact: Vec<CertificateDer<'static>>,
    pins: Vec<Pin>,
}

impl ServerCertVerifier for AnchorOrExact {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if !self.pins.is_empty() {
            return match pin_of(end_entity.as_ref()) {
                Some(pin) if self.pins.contains(&pin) => Ok(ServerCertVerified::assertion()),
                found => Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch(
                        format!(
                            "the server's key matches no --pin (its pin is {})",
                            found.map_or_else(|| "unreadable".to_owned(), |p| show_pin(&p))
                        ),
                    )))),
                )),
            };
        }
        let refused = match self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if !self.exact.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            return Err(refused);
        }
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        let (_, x509) = x509_parser::parse_x509_certificate(end_entity.as_ref()).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let validity = x509.validity();
        if secs < validity.not_before.timestamp() {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidYet,
            ));
        }
        if secs > validity.not_after.timestamp() {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_connection_offers_http1_only() {
        let config = client_config(None, &[[7; 32]]).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn pins_parse_in_the_usual_spellings_and_nothing_else() {
        let pin: Pin = core::array::from_fn(|i| u8::try_from(i).unwrap_or(0));
        let shown = show_pin(&pin);
        assert!(shown.starts_with("sha256:"));
        assert_eq!(parse_pin(&shown), Ok(pin));
        assert_eq!(parse_pin(&shown.replace("sha256:", "sha256//")), Ok(pin));
        assert_eq!(parse_pin(shown.trim_end_matches('=')), Ok(pin));
        let hexed = format!("sha256:{}", hex::encode(pin));
        assert_eq!(parse_pin(&hexed), Ok(pin));
        let colons: Vec<String> = pin.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(parse_pin(&format!("sha256:{}", colons.join(":"))), Ok(pin));
        for bad in [
            "",
            "sha256:",
            "md5:AAAA",
            &hex::encode(pin),
            "sha256:AAAA",
            &format!("sha256:{}", hex::encode([0u8; 31])),
        ] {
            let e = parse_pin(bad).unwrap_err();
            assert!(e.contains("fallback doctor"), "{e}");
        }
    }
}
