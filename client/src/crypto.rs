//! The one signature rule of the ledger: ed25519 verified under ZIP-215 (the rules of
//! `ed25519-consensus`), for single and batched checks alike, in the mempool, in block
//! execution and in every verifier. ZIP-215 batch and single verification agree by
//! construction, so a signature is valid everywhere or nowhere.
//!
//! Every signed message starts with a domain tag, so a signature over one kind of
//! message (a record, a vote) can never be replayed as another.

use ed25519_consensus::{VerificationKey, VerificationKeyBytes, batch};
use xinlian_genesis::keys::SigningKey;
use xinlian_genesis::{PublicKey, fixed_bytes};

fixed_bytes!(
    /// An ed25519 signature (R ‖ s).
    Signature,
    64
);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    Record,
    /// A precommit for a block: what commit certificates are made of.
    Precommit,
    /// Every other consensus message (proposals, prevotes, nil precommits), so that
    /// no signature on one can be read as a precommit for a block.
    Consensus,
}

impl Domain {
    fn tag(self) -> &'static [u8] {
        match self {
            Domain::Record => b"xinlian/record/v1\0",
            Domain::Precommit => b"xinlian/precommit/v1\0",
            Domain::Consensus => b"xinlian/consensus/v1\0",
        }
    }

    pub fn message(self, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(self.tag().len() + body.len());
        m.extend_from_slice(self.tag());
        m.extend_from_slice(body);
        m
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature does not verify under key {0} (ZIP-215 rules)")]
    Invalid(PublicKey),
}

/// Signs with the RFC 8032 deterministic algorithm (identical output to any compliant
/// signer, e.g. OpenSSL or Python `cryptography`).
pub fn sign(key: &SigningKey, domain: Domain, body: &[u8]) -> Signature {
    sign_raw(key, &domain.message(body))
}

/// Signs `message` exactly as given: it must already carry its domain tag
/// ([`Domain::message`]).
pub fn sign_raw(key: &SigningKey, message: &[u8]) -> Signature {
    use ed25519_dalek::Signer;
    Signature(key.sign(message).to_bytes())
}

pub fn verify(
    key: &PublicKey,
    domain: Domain,
    body: &[u8],
    sig: &Signature,
) -> Result<(), SignatureError> {
    verify_raw(key, &domain.message(body), sig)
}

/// Verifies a signature over `message` exactly as given (no domain tag): the rule itself.
pub fn verify_raw(key: &PublicKey, message: &[u8], sig: &Signature) -> Result<(), SignatureError> {
    let vk = VerificationKey::try_from(key.0).map_err(|_| SignatureError::Invalid(*key))?;
    vk.verify(&ed25519_consensus::Signature::from(sig.0), message)
        .map_err(|_| SignatureError::Invalid(*key))
}

/// Checks many signatures at once. On failure it re-checks each one (same rule) and
/// returns the indices of those that fail, in order.
pub fn verify_batch<'a>(
    items: impl IntoIterator<Item = (&'a PublicKey, Vec<u8>, &'a Signature)>,
) -> Result<(), Vec<usize>> {
    let items: Vec<_> = items.into_iter().collect();
    let mut verifier = batch::Verifier::new();
    let mut undecodable = Vec::new();
    for (i, (key, message, sig)) in items.iter().enumerate() {
        // The batch takes key bytes; a key that is not a point fails single checks too.
        if VerificationKey::try_from(key.0).is_err() {
            undecodable.push(i);
            continue;
        }
        verifier.queue((
            VerificationKeyBytes::from(key.0),
            ed25519_consensus::Signature::from(sig.0),
            message,
        ));
    }
    if undecodable.is_empty() && verifier.verify(rand_core::OsRng).is_ok() {
        return Ok(());
    }
    let bad: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, (key, message, sig))| verify_raw(key, message, sig).is_err())
        .map(|(i, _)| i)
        .collect();
    // ZIP-215 batch and single checks agree; a batch failure with no single failure
    // would mean that invariant broke, which must never be papered over.
    assert!(
        !bad.is_empty(),
        "ZIP-215 batch and single verification disagree"
    );
    Err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_separate_signatures() {
        let k = xinlian_genesis::keys::generate().unwrap();
        let pk = xinlian_genesis::keys::public_key(&k);
        let s = sign(&k, Domain::Record, b"abc");
        assert!(verify(&pk, Domain::Record, b"abc", &s).is_ok());
        assert!(verify(&pk, Domain::Precommit, b"abc", &s).is_err());
        assert!(verify(&pk, Domain::Record, b"abd", &s).is_err());
    }
}
