//! DKIM settings: `CBH_DKIM_KEY_FILE`, `CBH_DKIM_SELECTOR`, `CBH_DKIM_DOMAIN`. The key is read
//! and parsed here, at start-up, so that a key that cannot be used stops `serve` with one line.
//!
//! Accepted key files (PEM): RSA as PKCS#1 (`BEGIN RSA PRIVATE KEY`, what `dkim keygen` writes)
//! or PKCS#8 (`BEGIN PRIVATE KEY`, what `openssl genpkey` writes); Ed25519 as PKCS#8.

use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use rsa::pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPrivateKey as _};
use rsa::traits::PublicKeyParts as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimAlgorithm {
    Rsa,
    Ed25519,
}

impl DkimAlgorithm {
    /// The `a=` tag of the signature.
    pub fn as_str(self) -> &'static str {
        match self {
            DkimAlgorithm::Rsa => "rsa-sha256",
            DkimAlgorithm::Ed25519 => "ed25519-sha256",
        }
    }
}

/// A usable signing key and where to publish its public half. `Debug` hides the key.
#[derive(Clone, PartialEq, Eq)]
pub struct DkimSettings {
    pub key_file: PathBuf,
    pub selector: String,
    pub domain: String,
    pub algorithm: DkimAlgorithm,
    /// The key as lettre's `DkimSigningKey::new` takes it: PKCS#1 PEM (RSA) or the base64 of
    /// the 32-byte seed (Ed25519).
    key: String,
}

impl fmt::Debug for DkimSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkimSettings")
            .field("key_file", &self.key_file)
            .field("selector", &self.selector)
            .field("domain", &self.domain)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

impl DkimSettings {
    /// `S._domainkey.D (rsa-sha256)`, for `check` and the start-up log.
    pub fn describe(&self) -> String {
        format!(
            "{}._domainkey.{} ({})",
            self.selector,
            self.domain,
            self.algorithm.as_str()
        )
    }

    pub fn signing_key(&self) -> &str {
        &self.key
    }

    /// The selector and domain as DNS names.
    pub fn validate_names(selector: &str, domain: &str) -> Result<(), String> {
        validate_dns_name(selector).map_err(|e| format!("selector '{selector}' {e}"))?;
        validate_dns_name(domain).map_err(|e| format!("domain '{domain}' {e}"))
    }

    /// Validates the three settings together. `sender_domain` is the domain of
    /// `CBH_MAIL_FROM`, the default of `CBH_DKIM_DOMAIN`.
    pub fn parse(
        key_file: Option<&Path>,
        selector: Option<&str>,
        domain: Option<&str>,
        sender_domain: Option<&str>,
    ) -> Result<Option<Self>, String> {
        let Some(key_file) = key_file else {
            if selector.is_some() || domain.is_some() {
                return Err(
                    "CBH_DKIM_SELECTOR and CBH_DKIM_DOMAIN need CBH_DKIM_KEY_FILE (--dkim-key-file)"
                        .into(),
                );
            }
            return Ok(None);
        };
        let selector = selector
            .ok_or("CBH_DKIM_SELECTOR (--dkim-selector) is needed with CBH_DKIM_KEY_FILE")?;
        validate_dns_name(selector)
            .map_err(|e| format!("CBH_DKIM_SELECTOR (--dkim-selector): '{selector}' {e}"))?;
        let domain = match domain.or(sender_domain) {
            Some(domain) => domain.to_ascii_lowercase(),
            None => {
                return Err(
                    "CBH_DKIM_DOMAIN (--dkim-domain) is needed with CBH_DKIM_KEY_FILE \
                            when CBH_MAIL_FROM is not set"
                        .into(),
                );
            }
        };
        validate_dns_name(&domain)
            .map_err(|e| format!("CBH_DKIM_DOMAIN (--dkim-domain): '{domain}' {e}"))?;
        let bad = |why: String| {
            format!(
                "CBH_DKIM_KEY_FILE (--dkim-key-file): {}: {why}",
                key_file.display()
            )
        };
        let pem =
            std::fs::read_to_string(key_file).map_err(|e| bad(format!("cannot read: {e}")))?;
        let (algorithm, key) = parse_key(&pem).map_err(bad)?;
        Ok(Some(Self {
            key_file: key_file.to_owned(),
            selector: selector.to_owned(),
            domain,
            algorithm,
            key,
        }))
    }
}

/// The algorithm of a PEM private key and the key in lettre's form.
pub fn parse_key(pem: &str) -> Result<(DkimAlgorithm, String), String> {
    let rsa = if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
        rsa::RsaPrivateKey::from_pkcs1_pem(pem)
            .map_err(|e| format!("not a PKCS#1 RSA private key ({e})"))?
    } else if pem.contains("-----BEGIN PRIVATE KEY-----") {
        if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            return Ok((
                DkimAlgorithm::Ed25519,
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key.to_bytes()),
            ));
        }
        <rsa::RsaPrivateKey as rsa::pkcs8::DecodePrivateKey>::from_pkcs8_pem(pem)
            .map_err(|e| format!("not a PKCS#8 RSA or Ed25519 private key ({e})"))?
    } else {
        return Err("holds no PEM private key (BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)".into());
    };
    let bits = rsa.size() * 8;
    if bits < 1024 {
        return Err(format!(
            "an RSA key of {bits} bits is too short for DKIM (RFC 8301: 1024 at least, 2048 advised)"
        ));
    }
    let pkcs1 = rsa
        .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
        .map_err(|e| format!("cannot re-encode the RSA key ({e})"))?;
    Ok((DkimAlgorithm::Rsa, pkcs1.to_string()))
}

/// A selector or domain: dot-separated labels of letters, digits, `-` and `_`.
fn validate_dns_name(name: &str) -> Result<(), &'static str> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err("is not a DNS name (labels of letters, digits, '-' and '_')")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_go_together() {
        let key = Path::new("dkim.pem");
        let refused = |file, selector, domain, sender| {
            DkimSettings::parse(file, selector, domain, sender).expect_err("refused")
        };
        assert!(refused(None, Some("s1"), None, None).contains("need CBH_DKIM_KEY_FILE"));
        assert!(refused(Some(key), None, None, Some("lab.example")).contains("CBH_DKIM_SELECTOR"));
        assert!(refused(Some(key), Some("s1"), None, None).contains("CBH_DKIM_DOMAIN"));
        assert!(
            refused(Some(key), Some("s 1"), None, Some("lab.example"))
                .contains("is not a DNS name")
        );
        assert!(
            refused(Some(key), Some("s1"), Some("lab..example"), None)
                .contains("is not a DNS name")
        );
        assert!(
            refused(Some(key), Some("s1"), None, Some("lab.example"))
                .starts_with("CBH_DKIM_KEY_FILE (--dkim-key-file): dkim.pem: cannot read")
        );
        assert_eq!(DkimSettings::parse(None, None, None, None), Ok(None));
    }
}
