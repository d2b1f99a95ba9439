//! SCRAM channel binding: the `tls-server-end-point` value (RFC 5929 §4.1) of the server
//! certificate, hashed as PostgreSQL and libpq hash it.
//!
//! The hash is the one in the certificate's own signature algorithm, except that MD5 and SHA-1
//! are replaced by SHA-256: an RSA-SHA384 or ECDSA-SHA384 certificate is hashed with SHA-384,
//! RSA-PSS with the hash its parameters name. Ed25519 and Ed448 sign without a separate hash, so
//! such a certificate has no `tls-server-end-point` value; PostgreSQL's server and libpq then fail
//! (`could not find digest for NID UNDEF`). Sluice offers no binding instead, which the server
//! accepts under `channel_binding=prefer` and which fails the login under `require`.
//!
//! Only the outer `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }` is
//! read, with the `der`/`spki` crates rustls's neighbours already use; the certificate itself is
//! verified (or not, per sslmode) by `tls.rs`.

use std::fmt;

use spki::der::asn1::{AnyRef, ContextSpecific};
use spki::der::{Decode, Reader, SliceReader, TagNumber};
use spki::{AlgorithmIdentifierRef, ObjectIdentifier};

/// The hash a `tls-server-end-point` value is computed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndPointHash {
    Sha256,
    Sha384,
    Sha512,
}

impl EndPointHash {
    pub fn name(self) -> &'static str {
        match self {
            EndPointHash::Sha256 => "SHA-256",
            EndPointHash::Sha384 => "SHA-384",
            EndPointHash::Sha512 => "SHA-512",
        }
    }

    fn ring(self) -> &'static ring::digest::Algorithm {
        match self {
            EndPointHash::Sha256 => &ring::digest::SHA256,
            EndPointHash::Sha384 => &ring::digest::SHA384,
            EndPointHash::Sha512 => &ring::digest::SHA512,
        }
    }
}

/// Why a certificate has no `tls-server-end-point` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoBinding {
    /// No certificate was presented.
    NoCertificate,
    /// The signature algorithm has no separate hash (Ed25519, Ed448).
    NoHash(&'static str),
    /// The hash is one Sluice cannot compute (SHA-224).
    UnsupportedHash(&'static str),
    /// A signature algorithm Sluice does not know, by OID.
    UnknownAlgorithm(String),
    /// The certificate is not DER Sluice can read.
    Malformed,
}

impl fmt::Display for NoBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoBinding::NoCertificate => f.write_str("the server presented no certificate"),
            NoBinding::NoHash(alg) => {
                write!(f, "the server certificate is signed with {alg}, which has no hash to bind the login to")
            }
            NoBinding::UnsupportedHash(hash) => {
                write!(f, "the server certificate's signature uses {hash}, which Sluice cannot compute")
            }
            NoBinding::UnknownAlgorithm(oid) => {
                write!(f, "the server certificate's signature algorithm ({oid}) is unknown to Sluice")
            }
            NoBinding::Malformed => f.write_str("the server certificate could not be read"),
        }
    }
}

/// The channel-binding data for `cert` (DER): its hash, and which hash was used.
pub fn tls_server_end_point(cert: &[u8]) -> Result<(EndPointHash, Vec<u8>), NoBinding> {
    let hash = end_point_hash(cert)?;
    Ok((hash, ring::digest::digest(hash.ring(), cert).as_ref().to_vec()))
}

/// RFC 5929 §4.1's choice of hash for `cert` (DER).
pub fn end_point_hash(cert: &[u8]) -> Result<EndPointHash, NoBinding> {
    let algorithm = signature_algorithm(cert).map_err(|_| NoBinding::Malformed)?;
    hash_for(&algorithm)
}

fn signature_algorithm(cert: &[u8]) -> spki::der::Result<AlgorithmIdentifierRef<'_>> {
    let mut reader = SliceReader::new(cert)?;
    let algorithm = reader.sequence(|r| {
        r.tlv_bytes()?; // tbsCertificate
        let algorithm = AlgorithmIdentifierRef::decode(r)?;
        r.tlv_bytes()?; // signature
        Ok::<_, spki::der::Error>(algorithm)
    })?;
    reader.finish()?;
    Ok(algorithm)
}

const fn oid(s: &str) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(s)
}

const MD5_RSA: ObjectIdentifier = oid("1.2.840.113549.1.1.4");
const SHA1_RSA: ObjectIdentifier = oid("1.2.840.113549.1.1.5");
const RSA_PSS: ObjectIdentifier = oid("1.2.840.113549.1.1.10");
const SHA256_RSA: ObjectIdentifier = oid("1.2.840.113549.1.1.11");
const SHA384_RSA: ObjectIdentifier = oid("1.2.840.113549.1.1.12");
const SHA512_RSA: ObjectIdentifier = oid("1.2.840.113549.1.1.13");
const SHA224_RSA: ObjectIdentifier = oid("1.2.840.113549.1.1.14");
const ECDSA_SHA1: ObjectIdentifier = oid("1.2.840.10045.4.1");
const ECDSA_SHA224: ObjectIdentifier = oid("1.2.840.10045.4.3.1");
const ECDSA_SHA256: ObjectIdentifier = oid("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = oid("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = oid("1.2.840.10045.4.3.4");
const DSA_SHA1: ObjectIdentifier = oid("1.2.840.10040.4.3");
const DSA_SHA256: ObjectIdentifier = oid("2.16.840.1.101.3.4.3.2");
const ED25519: ObjectIdentifier = oid("1.3.101.112");
const ED448: ObjectIdentifier = oid("1.3.101.113");
// Hash algorithms, as RSA-PSS parameters name them.
const SHA1: ObjectIdentifier = oid("1.3.14.3.2.26");
const MD5: ObjectIdentifier = oid("1.2.840.113549.2.5");
const SHA256: ObjectIdentifier = oid("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = oid("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = oid("2.16.840.1.101.3.4.2.3");
const SHA224: ObjectIdentifier = oid("2.16.840.1.101.3.4.2.4");

fn hash_for(algorithm: &AlgorithmIdentifierRef<'_>) -> Result<EndPointHash, NoBinding> {
    let id = algorithm.oid;
    match id {
        // MD5 and SHA-1 are replaced by SHA-256.
        MD5_RSA | SHA1_RSA | ECDSA_SHA1 | DSA_SHA1 => Ok(EndPointHash::Sha256),
        SHA256_RSA | ECDSA_SHA256 | DSA_SHA256 => Ok(EndPointHash::Sha256),
        SHA384_RSA | ECDSA_SHA384 => Ok(EndPointHash::Sha384),
        SHA512_RSA | ECDSA_SHA512 => Ok(EndPointHash::Sha512),
        SHA224_RSA | ECDSA_SHA224 => Err(NoBinding::UnsupportedHash("SHA-224")),
        ED25519 => Err(NoBinding::NoHash("Ed25519")),
        ED448 => Err(NoBinding::NoHash("Ed448")),
        RSA_PSS => pss_hash(algorithm.parameters),
        other => Err(NoBinding::UnknownAlgorithm(other.to_string())),
    }
}

/// `RSASSA-PSS-params ::= SEQUENCE { hashAlgorithm [0] EXPLICIT HashAlgorithm DEFAULT sha1, … }`
/// (RFC 4055); the default SHA-1 is replaced by SHA-256 like any other SHA-1.
fn pss_hash(parameters: Option<AnyRef<'_>>) -> Result<EndPointHash, NoBinding> {
    let Some(parameters) = parameters else {
        return Err(NoBinding::Malformed);
    };
    let hash = parameters
        .sequence(|r| {
            let hash = ContextSpecific::<AlgorithmIdentifierRef<'_>>::decode_explicit(r, TagNumber(0))?;
            while !r.is_finished() {
                r.tlv_bytes()?; // mask generation, salt length, trailer field
            }
            Ok::<_, spki::der::Error>(hash.map(|h| h.value.oid))
        })
        .map_err(|_| NoBinding::Malformed)?;
    match hash.unwrap_or(SHA1) {
        MD5 | SHA1 | SHA256 => Ok(EndPointHash::Sha256),
        SHA384 => Ok(EndPointHash::Sha384),
        SHA512 => Ok(EndPointHash::Sha512),
        SHA224 => Err(NoBinding::UnsupportedHash("SHA-224")),
        other => Err(NoBinding::UnknownAlgorithm(format!("RSA-PSS with hash {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal DER certificate shell around `algorithm` (an AlgorithmIdentifier's bytes):
    /// only the outer structure this module reads is real.
    fn shell(algorithm: &[u8]) -> Vec<u8> {
        let tbs = [0x30, 0x03, 0x02, 0x01, 0x01];
        let signature = [0x03, 0x02, 0x00, 0xAA];
        let body_len = tbs.len() + algorithm.len() + signature.len();
        let mut out = vec![0x30, u8::try_from(body_len).expect("short")];
        out.extend_from_slice(&tbs);
        out.extend_from_slice(algorithm);
        out.extend_from_slice(&signature);
        out
    }

    fn der_oid(oid: &ObjectIdentifier) -> Vec<u8> {
        let bytes = oid.as_bytes();
        let mut out = vec![0x06, u8::try_from(bytes.len()).expect("short")];
        out.extend_from_slice(bytes);
        out
    }

    fn seq(parts: &[&[u8]]) -> Vec<u8> {
        let body: Vec<u8> = parts.concat();
        let mut out = vec![0x30, u8::try_from(body.len()).expect("short")];
        out.extend(body);
        out
    }

    fn algorithm(oid: &ObjectIdentifier, params: Option<&[u8]>) -> Vec<u8> {
        match params {
            Some(p) => seq(&[&der_oid(oid), p]),
            None => seq(&[&der_oid(oid)]),
        }
    }

    /// RSASSA-PSS-params naming `hash`, or empty (all defaults) for `None`.
    fn pss(hash: Option<&ObjectIdentifier>) -> Vec<u8> {
        let salt = [0xA2, 0x03, 0x02, 0x01, 0x30];
        match hash {
            Some(h) => {
                let hash_alg = seq(&[&der_oid(h), &[0x05, 0x00]]);
                let mut tagged = vec![0xA0, u8::try_from(hash_alg.len()).expect("short")];
                tagged.extend(hash_alg);
                seq(&[&tagged, &salt])
            }
            None => seq(&[]),
        }
    }

    #[test]
    fn hash_follows_rfc_5929_and_libpq() {
        let null: &[u8] = &[0x05, 0x00];
        let cases: Vec<(Vec<u8>, Result<EndPointHash, NoBinding>)> = vec![
            (algorithm(&MD5_RSA, Some(null)), Ok(EndPointHash::Sha256)),
            (algorithm(&SHA1_RSA, Some(null)), Ok(EndPointHash::Sha256)),
            (algorithm(&SHA256_RSA, Some(null)), Ok(EndPointHash::Sha256)),
            (algorithm(&SHA384_RSA, Some(null)), Ok(EndPointHash::Sha384)),
            (algorithm(&SHA512_RSA, Some(null)), Ok(EndPointHash::Sha512)),
            (algorithm(&ECDSA_SHA1, None), Ok(EndPointHash::Sha256)),
            (algorithm(&ECDSA_SHA256, None), Ok(EndPointHash::Sha256)),
            (algorithm(&ECDSA_SHA384, None), Ok(EndPointHash::Sha384)),
            (algorithm(&ECDSA_SHA512, None), Ok(EndPointHash::Sha512)),
            (algorithm(&RSA_PSS, Some(&pss(Some(&SHA384)))), Ok(EndPointHash::Sha384)),
            (algorithm(&RSA_PSS, Some(&pss(Some(&SHA512)))), Ok(EndPointHash::Sha512)),
            (algorithm(&RSA_PSS, Some(&pss(Some(&SHA256)))), Ok(EndPointHash::Sha256)),
            (algorithm(&RSA_PSS, Some(&pss(Some(&SHA1)))), Ok(EndPointHash::Sha256)),
            (algorithm(&RSA_PSS, Some(&pss(None))), Ok(EndPointHash::Sha256)),
            (algorithm(&RSA_PSS, None), Err(NoBinding::Malformed)),
            (algorithm(&RSA_PSS, Some(&pss(Some(&SHA224)))), Err(NoBinding::UnsupportedHash("SHA-224"))),
            (algorithm(&SHA224_RSA, Some(null)), Err(NoBinding::UnsupportedHash("SHA-224"))),
            (algorithm(&ED25519, None), Err(NoBinding::NoHash("Ed25519"))),
            (algorithm(&ED448, None), Err(NoBinding::NoHash("Ed448"))),
            (algorithm(&oid("1.2.3.4"), None), Err(NoBinding::UnknownAlgorithm("1.2.3.4".into()))),
        ];
        for (alg, expected) in cases {
            assert_eq!(end_point_hash(&shell(&alg)), expected, "{alg:02x?}");
        }
    }

    #[test]
    fn the_value_is_the_hash_of_the_whole_certificate() {
        let cert = shell(&algorithm(&ECDSA_SHA384, None));
        let (hash, value) = tls_server_end_point(&cert).expect("binding");
        assert_eq!(hash, EndPointHash::Sha384);
        assert_eq!(value, ring::digest::digest(&ring::digest::SHA384, &cert).as_ref());
        assert_eq!(value.len(), 48);
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let good = shell(&algorithm(&ECDSA_SHA256, None));
        for bad in [&[][..], &[0x30][..], &[0x30, 0x00][..], &good[..good.len() - 1], &[0x04, 0x01, 0x00][..]] {
            assert_eq!(end_point_hash(bad), Err(NoBinding::Malformed), "{bad:02x?}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(end_point_hash(&trailing), Err(NoBinding::Malformed));
    }
}
