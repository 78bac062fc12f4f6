//! What makes a message arrive: the DKIM signature (lettre's `dkim` feature), the
//! `Auto-Submitted` header (RFC 3834), and new keys for `cbh-invite dkim keygen`.

use lettre::Message;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::{Header, HeaderName, HeaderValue};

use crate::config::{DkimAlgorithm, DkimSettings};

/// The headers signed, besides the body. A header a message lacks is signed as absent, so it
/// cannot be added on the way. Not `Content-Type`: lettre writes a multipart's with the body,
/// after signing, so it would be signed as absent and the signature broken.
const SIGNED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "Auto-Submitted",
    "MIME-Version",
    // Signed so that no one on the way can add or change where a one-click POST goes.
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    // The language the message is written in (`mail::ContentLanguage`).
    "Content-Language",
];

/// `Auto-Submitted: auto-generated` (RFC 3834): auto-responders do not answer it.
#[derive(Debug, Clone, Copy)]
pub struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// Signs messages with the configured key, relaxed/relaxed.
pub struct Signer {
    config: DkimConfig,
}

impl Signer {
    pub fn new(settings: &DkimSettings) -> anyhow::Result<Self> {
        let algorithm = match settings.algorithm {
            DkimAlgorithm::Rsa => DkimSigningAlgorithm::Rsa,
            DkimAlgorithm::Ed25519 => DkimSigningAlgorithm::Ed25519,
        };
        let key = DkimSigningKey::new(settings.signing_key(), algorithm).map_err(|e| {
            anyhow::anyhow!(
                "CBH_DKIM_KEY_FILE (--dkim-key-file): {}: {e}",
                settings.key_file.display()
            )
        })?;
        let config = DkimConfig::new(
            settings.selector.clone(),
            settings.domain.clone(),
            key,
            SIGNED_HEADERS
                .iter()
                .map(|name| HeaderName::new_from_ascii_str(name))
                .collect(),
            DkimCanonicalization {
                header: DkimCanonicalizationType::Relaxed,
                body: DkimCanonicalizationType::Relaxed,
            },
        );
        Ok(Self { config })
    }

    /// Adds the DKIM-Signature header: the last change made to a message.
    pub fn sign(&self, message: &mut Message) {
        message.sign(&self.config);
    }
}

/// A new private key (PEM, as `CBH_DKIM_KEY_FILE` reads it) and the `p=` of its DNS record.
pub struct NewKey {
    pub pem: String,
    pub public: String,
}

impl NewKey {
    /// The TXT record published at `SELECTOR._domainkey.DOMAIN`.
    pub fn txt_record(&self, algorithm: DkimAlgorithm) -> String {
        let k = match algorithm {
            DkimAlgorithm::Rsa => "rsa",
            DkimAlgorithm::Ed25519 => "ed25519",
        };
        format!("v=DKIM1; k={k}; p={}", self.public)
    }
}

/// RSA 2048 (PKCS#1 PEM; `p=` the SubjectPublicKeyInfo DER) or Ed25519 (PKCS#8 PEM; `p=` the
/// raw 32-byte public key, RFC 8463).
pub fn generate(algorithm: DkimAlgorithm) -> anyhow::Result<NewKey> {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    match algorithm {
        DkimAlgorithm::Rsa => {
            use rsa::pkcs1::EncodeRsaPrivateKey as _;
            use rsa::pkcs8::EncodePublicKey as _;
            let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048)?;
            let pem = key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)?.to_string();
            let public = key.to_public_key().to_public_key_der()?;
            Ok(NewKey {
                pem,
                public: b64(public.as_bytes()),
            })
        }
        DkimAlgorithm::Ed25519 => {
            use ed25519_dalek::pkcs8::EncodePrivateKey as _;
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            let pem = key
                .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)?
                .to_string();
            Ok(NewKey {
                pem,
                public: b64(key.verifying_key().as_bytes()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_dkim_key;

    #[test]
    fn generated_keys_read_back_as_the_same_algorithm() {
        for algorithm in [DkimAlgorithm::Ed25519, DkimAlgorithm::Rsa] {
            let key = generate(algorithm).expect("generates");
            let (read, _) = parse_dkim_key(&key.pem).expect("reads back");
            assert_eq!(read, algorithm);
        }
    }

    #[test]
    fn a_file_without_a_key_is_refused() {
        let error = parse_dkim_key("hello").expect_err("refused");
        assert!(error.contains("no PEM private key"), "{error}");
    }
}
