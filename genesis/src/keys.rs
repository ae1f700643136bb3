//! Ed25519 key material: generation, PKCS#8 PEM files (the form `openssl genpkey
//! -algorithm ed25519` writes), and the key rules every node and client applies.

use std::path::Path;

pub use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};

use crate::bytes::PublicKey;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a PKCS#8 PEM ed25519 private key: {reason}")]
    Parse { path: String, reason: String },
    #[error("no operating-system randomness: {0}")]
    Random(String),
    #[error("public key {0} is not a canonical point encoding")]
    NotCanonical(PublicKey),
    #[error("public key {0} is of small order (a weak key anyone can sign for)")]
    Weak(PublicKey),
}

pub fn generate() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

pub fn public_key(key: &SigningKey) -> PublicKey {
    PublicKey(key.verifying_key().to_bytes())
}

pub fn to_pem(key: &SigningKey) -> String {
    key.to_pkcs8_pem(LineEnding::LF)
        .expect("ed25519 keys always encode as PKCS#8")
        .to_string()
}

pub fn from_pem(pem: &str, origin: &str) -> Result<SigningKey, KeyError> {
    SigningKey::from_pkcs8_pem(pem.trim()).map_err(|e| KeyError::Parse {
        path: origin.to_string(),
        reason: e.to_string(),
    })
}

pub fn read_pem(path: &Path) -> Result<SigningKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })?;
    from_pem(&text, &path.display().to_string())
}

/// Writes a private key readable by its owner only.
pub fn write_pem(path: &Path, key: &SigningKey) -> Result<(), KeyError> {
    use std::io::Write;
    let err = |source| KeyError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(to_pem(key).as_bytes()).map_err(err)
}

/// A key may be bound to an identity (in genesis or on the ledger) only if it is a
/// canonical encoding of a point that is not of small order. Signature checks follow
/// ZIP-215, which tolerates such keys; refusing to bind them keeps every bound key
/// one that only its holder can sign for.
pub fn check_bindable(key: &PublicKey) -> Result<(), KeyError> {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&key.0)
        .map_err(|_| KeyError::NotCanonical(*key))?;
    if vk.to_bytes() != key.0 {
        return Err(KeyError::NotCanonical(*key));
    }
    if vk.is_weak() {
        return Err(KeyError::Weak(*key));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip() {
        let k = generate().unwrap();
        let back = from_pem(&to_pem(&k), "mem").unwrap();
        assert_eq!(public_key(&k), public_key(&back));
        check_bindable(&public_key(&k)).unwrap();
    }

    #[test]
    fn openssl_style_pkcs8_v1_parses() {
        // Output of `openssl genpkey -algorithm ed25519` (RFC 8410 test key).
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let k = from_pem(pem, "rfc8410").unwrap();
        assert_eq!(
            public_key(&k).to_hex(),
            "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1"
        );
    }

    #[test]
    fn small_order_and_non_canonical_keys_are_not_bindable() {
        // The identity point (small order) and y = p (non-canonical encoding of 0).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(
            check_bindable(&PublicKey(identity)),
            Err(KeyError::Weak(_))
        ));
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(check_bindable(&PublicKey(p)).is_err());
    }
}
