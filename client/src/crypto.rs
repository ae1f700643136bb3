//! The one signature rule of the ledger: ed25519 verified under ZIP-215 (the rules of
//! `ed25519-consensus`), for single and batched checks alike, in the mempool, in block
//! execution and in every verifier. ZIP-215 batch and single verification agree by
//! construction, so a signature is valid everywhere or nowhere.
//!
//! Every signed message starts with a domain tag, so a signature over one kind of
//! message (a record, a vote, a proof of possession) can never be replayed as another.

use ed25519_consensus::{VerificationKey, VerificationKeyBytes, batch};
use serde::Serialize;
use xinlian_genesis::keys::{SigningKey, public_key};
use xinlian_genesis::{Hash32, PublicKey, canonical, fixed_bytes};

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
    /// A key's holder shows it holds the key before the key is bound to it
    /// ([`possession_message`]).
    KeyPossession,
}

impl Domain {
    fn tag(self) -> &'static [u8] {
        match self {
            Domain::Record => b"xinlian/record/v1\0",
            Domain::Precommit => b"xinlian/precommit/v1\0",
            Domain::Consensus => b"xinlian/consensus/v1\0",
            Domain::KeyPossession => b"xinlian/key-possession/v1\0",
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
    let seen = verified::Digest::of(key, message, sig);
    if verified::contains(&seen) {
        return Ok(());
    }
    verify_uncached(key, message, sig)?;
    verified::insert([seen]);
    Ok(())
}

/// The last this many distinct signatures found valid, or found again in the memo, are
/// always still remembered (the memo drops only older ones): a caller that checks ahead
/// for later use (a sync answer, say) checks no more than this, less what else may be
/// checked meanwhile.
pub const REMEMBERED_AT_LEAST: usize = verified::GENERATION_MAX;

/// Forgets every signature remembered as valid: for benchmarks, which measure the
/// checks themselves, and would otherwise time the memo from their second iteration on.
pub fn forget_verified() {
    verified::forget();
}

fn verify_uncached(key: &PublicKey, message: &[u8], sig: &Signature) -> Result<(), SignatureError> {
    let vk = VerificationKey::try_from(key.0).map_err(|_| SignatureError::Invalid(*key))?;
    vk.verify(&ed25519_consensus::Signature::from(sig.0), message)
        .map_err(|_| SignatureError::Invalid(*key))
}

/// Signatures this process has already found valid. One signature is checked many times
/// over: a record at admission to the mempool, again in every proposal that carries it
/// and again at commit; a vote when it arrives and again in the certificate it ends up
/// in. Verification is a pure function of (key, message, signature), so remembering its
/// positive answers changes no result, only the cost. Only successes are remembered,
/// keyed by SHA-256 over the three, length-delimited, so a hit needs the very same key,
/// message and signature. Bounded: two generations of `GENERATION_MAX` digests; when
/// the current one fills, it becomes the previous and the oldest is dropped. Anyone can
/// make valid signatures with keys of their own, so a flood of them can flush the memo:
/// that costs the checks the memo saved, never a wrong answer.
mod verified {
    use std::collections::HashSet;
    use std::sync::{LazyLock, Mutex, MutexGuard};

    use sha2::{Digest as _, Sha256};

    use super::Signature;
    use xinlian_genesis::PublicKey;

    /// 2^16: twice the records the host checks ahead of one sync answer (it checks
    /// at most half of this), so warming an answer never evicts its own start; two
    /// full generations of 32-byte digests take about 9 MiB.
    pub(super) const GENERATION_MAX: usize = 1 << 16;

    #[derive(Clone, Copy, PartialEq, Eq, Hash)]
    pub(super) struct Digest(pub(super) [u8; 32]);

    impl Digest {
        pub(super) fn of(key: &PublicKey, message: &[u8], sig: &Signature) -> Digest {
            let mut h = Sha256::new();
            h.update(b"xinlian/verified/v1\0");
            h.update(key.0);
            h.update(sig.0);
            h.update((message.len() as u64).to_le_bytes());
            h.update(message);
            Digest(h.finalize().into())
        }
    }

    #[derive(Default)]
    struct Generations {
        current: HashSet<Digest>,
        previous: HashSet<Digest>,
    }

    static VERIFIED: LazyLock<Mutex<Generations>> = LazyLock::new(Default::default);

    fn cache() -> MutexGuard<'static, Generations> {
        // The sets hold no invariant a panicking holder could break half-way.
        VERIFIED.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `d` is remembered; one found only in the older generation is moved to
    /// the current one, so what is looked up stays as long as what is new.
    pub(super) fn contains(d: &Digest) -> bool {
        let mut c = cache();
        if c.current.contains(d) {
            return true;
        }
        if !c.previous.contains(d) {
            return false;
        }
        c.add(*d);
        true
    }

    pub(super) fn insert(ds: impl IntoIterator<Item = Digest>) {
        let mut c = cache();
        for d in ds {
            c.add(d);
        }
    }

    impl Generations {
        fn add(&mut self, d: Digest) {
            if self.current.len() >= GENERATION_MAX {
                self.previous = std::mem::take(&mut self.current);
            }
            self.current.insert(d);
        }
    }

    pub(super) fn forget() {
        let mut c = cache();
        c.current.clear();
        c.previous.clear();
    }

    #[cfg(test)]
    pub(super) fn len() -> usize {
        let c = cache();
        c.current.len() + c.previous.len()
    }
}

/// Whom a key is bound to: an enterprise (by USCC) or a consortium member (by id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum KeyHolder<'a> {
    Enterprise(&'a str),
    Member(&'a str),
    /// A custody key, for the trace domain named ([`crate::record::BindCustodyKey`]).
    Custody(&'a str),
}

impl std::fmt::Display for KeyHolder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyHolder::Enterprise(u) => write!(f, "enterprise {u}"),
            KeyHolder::Member(m) => write!(f, "member '{m}'"),
            KeyHolder::Custody(d) => write!(f, "a custody key for domain '{d}'"),
        }
    }
}

/// What a proof of possession signs, after its domain tag: the canonical encoding of
/// (chain, key, holder) — the genesis hash (32 bytes), the key (32 bytes), then 0 for
/// an enterprise, 1 for a member or 2 for a custody key, a varint length and the USCC,
/// member id or trace domain in UTF-8. Bound to the chain and the holder, a proof cannot be replayed for another.
pub fn possession_message(chain: &Hash32, key: &PublicKey, holder: KeyHolder<'_>) -> Vec<u8> {
    Domain::KeyPossession.message(&canonical::encode(&(chain, key, holder)))
}

/// The proof that the holder of `key` means it to be bound to `holder` on `chain`.
pub fn prove_possession(key: &SigningKey, chain: &Hash32, holder: KeyHolder<'_>) -> Signature {
    sign_raw(key, &possession_message(chain, &public_key(key), holder))
}

pub fn verify_possession(
    chain: &Hash32,
    key: &PublicKey,
    holder: KeyHolder<'_>,
    proof: &Signature,
) -> Result<(), SignatureError> {
    verify_raw(key, &possession_message(chain, key, holder), proof)
}

/// Checks many signatures at once. On failure it re-checks each one (same rule) and
/// returns the indices of those that fail, in order.
pub fn verify_batch<'a>(
    items: impl IntoIterator<Item = (&'a PublicKey, Vec<u8>, &'a Signature)>,
) -> Result<(), Vec<usize>> {
    let items: Vec<_> = items.into_iter().collect();
    let mut verifier = batch::Verifier::new();
    let mut undecodable = Vec::new();
    let mut checked = Vec::new();
    for (i, (key, message, sig)) in items.iter().enumerate() {
        let seen = verified::Digest::of(key, message, sig);
        if verified::contains(&seen) {
            continue;
        }
        checked.push(seen);
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
    if undecodable.is_empty() && (checked.is_empty() || verifier.verify(rand_core::OsRng).is_ok()) {
        verified::insert(checked);
        return Ok(());
    }
    // Each one alone, by the same rule; the good ones are remembered like any other.
    let bad: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, (key, message, sig))| verify_raw(key, message, sig).is_err())
        .map(|(i, _)| i)
        .collect();
    // ZIP-215 batch and single checks agree. Should they ever not, the single check is
    // the rule and the batch only a shortcut, so its verdict stands: no panic here,
    // where every signature comes from outside.
    if bad.is_empty() { Ok(()) } else { Err(bad) }
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

    #[test]
    fn a_remembered_signature_vouches_for_nothing_else() {
        let k = xinlian_genesis::keys::generate().unwrap();
        let pk = public_key(&k);
        let s = sign(&k, Domain::Record, b"remembered");
        // Twice: the second answer comes from what the first remembered.
        assert!(verify(&pk, Domain::Record, b"remembered", &s).is_ok());
        assert!(verify(&pk, Domain::Record, b"remembered", &s).is_ok());
        assert!(verify(&pk, Domain::Record, b"remembereD", &s).is_err());
        let mut spoiled = s;
        spoiled.0[40] ^= 1;
        assert!(verify(&pk, Domain::Record, b"remembered", &spoiled).is_err());
        let stranger = public_key(&xinlian_genesis::keys::generate().unwrap());
        assert!(verify(&stranger, Domain::Record, b"remembered", &s).is_err());
        // A batch of a remembered good one and a bad one names the bad one only, and
        // a batch of remembered good ones passes without a check.
        let good = Domain::Record.message(b"remembered");
        let bad = Domain::Record.message(b"forgotten");
        assert_eq!(
            verify_batch([(&pk, good.clone(), &s), (&pk, bad, &s)]),
            Err(vec![1])
        );
        assert_eq!(
            verify_batch([(&pk, good.clone(), &s), (&pk, good, &s)]),
            Ok(())
        );
    }

    #[test]
    fn what_is_remembered_stays_bounded() {
        let many = (0..3 * verified::GENERATION_MAX as u64).map(|i| {
            let mut d = [0u8; 32];
            d[..8].copy_from_slice(&i.to_le_bytes());
            d[8] = 0xee;
            verified::Digest(d)
        });
        verified::insert(many);
        assert!(verified::len() <= 2 * verified::GENERATION_MAX);
        let mut first = [0u8; 32];
        first[8] = 0xee;
        assert!(
            !verified::contains(&verified::Digest(first)),
            "the oldest generation is dropped"
        );
        // Found again, a digest of the older generation moves to the current one, so
        // it outlives the next turn of generations (in this test, which alone fills
        // the memo, so that no other test turns them meanwhile).
        let digest = |i: u64| {
            let mut d = [0u8; 32];
            d[..8].copy_from_slice(&i.to_le_bytes());
            d[8] = 0xdd;
            verified::Digest(d)
        };
        let kept = digest(u64::MAX);
        verified::insert([kept]);
        verified::insert((0..verified::GENERATION_MAX as u64).map(digest));
        assert!(verified::contains(&kept), "still in the older generation");
        verified::insert((0..verified::GENERATION_MAX as u64).map(|i| digest(i + (1 << 40))));
        assert!(
            verified::contains(&kept),
            "moved to the current one when found"
        );
    }

    #[test]
    fn a_possession_proof_holds_for_its_chain_key_and_holder_only() {
        let k = xinlian_genesis::keys::generate().unwrap();
        let pk = public_key(&k);
        let (chain, other) = (Hash32([1; 32]), Hash32([2; 32]));
        let u = KeyHolder::Enterprise("91310000MA1ABC1234");
        let p = prove_possession(&k, &chain, u);
        assert!(verify_possession(&chain, &pk, u, &p).is_ok());
        assert!(verify_possession(&other, &pk, u, &p).is_err());
        let u2 = KeyHolder::Enterprise("91310000MA1ABC1235");
        assert!(verify_possession(&chain, &pk, u2, &p).is_err());
        // The same text as a member id is another holder.
        let m = KeyHolder::Member("91310000MA1ABC1234");
        assert!(verify_possession(&chain, &pk, m, &p).is_err());
        let stranger = public_key(&xinlian_genesis::keys::generate().unwrap());
        assert!(verify_possession(&chain, &stranger, u, &p).is_err());
        // Not a record signature either.
        let body = canonical::encode(&(chain, pk, u));
        assert!(verify(&pk, Domain::Record, &body, &p).is_err());
        // The layout the documentation gives, for producers in other languages.
        let mut expected = b"xinlian/key-possession/v1\0".to_vec();
        expected.extend_from_slice(&chain.0);
        expected.extend_from_slice(&pk.0);
        expected.push(0);
        expected.push(18);
        expected.extend_from_slice(b"91310000MA1ABC1234");
        assert_eq!(possession_message(&chain, &pk, u), expected);
    }
}
