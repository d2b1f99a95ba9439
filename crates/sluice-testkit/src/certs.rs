use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertPair").finish_non_exhaustive()
    }
}

/// The key a [`TestCa`] signs with, which decides the signature algorithm of every certificate
/// it issues (what SCRAM channel binding hashes with). The issued certificates' own keys are
/// ECDSA P-256 whatever the CA's. rcgen on ring cannot generate RSA keys nor sign with P-521,
/// so RSA and SHA-512 chains come from the `openssl` command in the tests that need them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CaKey {
    /// ecdsa-with-SHA256.
    #[default]
    EcdsaP256,
    /// ecdsa-with-SHA384.
    EcdsaP384,
    /// Ed25519 (no separate hash).
    Ed25519,
}

/// A private certificate authority minted for one test.
pub struct TestCa {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> crate::Result<TestCa> {
        TestCa::with_key(name, CaKey::default())
    }

    /// A CA whose key, and so whose certificates' signature algorithm, is `key`.
    pub fn with_key(name: &str, key: CaKey) -> crate::Result<TestCa> {
        let algorithm = match key {
            CaKey::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            CaKey::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            CaKey::Ed25519 => &rcgen::PKCS_ED25519,
        };
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate_for(algorithm)?;
        let cert = params.self_signed(&key)?;
        Ok(TestCa { cert_pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    /// A server certificate valid for exactly `names` (DNS names or IP addresses).
    pub fn server_cert(&self, names: &[&str]) -> crate::Result<CertPair> {
        let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("server"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A server certificate for `names` that expired in 2001.
    pub fn expired_server_cert(&self, names: &[&str]) -> crate::Result<CertPair> {
        let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        self.sign(params)
    }

    /// A client certificate whose CN is the PostgreSQL role it authenticates (`cert` auth).
    pub fn client_cert(&self, role: &str) -> crate::Result<CertPair> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, role);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> crate::Result<CertPair> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}
