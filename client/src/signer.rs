//! A signer that turns record bodies into signed records for one chain, each with a
//! fresh random nonce (the replay protection of docs/records.md).

use rand_core::RngCore;
use xinlian_genesis::Hash32;
use xinlian_genesis::keys::{SigningKey, public_key};

use crate::record::{Body, Envelope, SignedRecord};

/// Signs bodies for one chain with one key, each with a fresh random nonce.
pub struct RecordSigner {
    pub key: SigningKey,
    pub chain: Hash32,
}

impl RecordSigner {
    pub fn sign(&self, body: impl Into<Body>) -> SignedRecord {
        let env = Envelope {
            chain: self.chain,
            signer: public_key(&self.key),
            nonce: rand_core::OsRng.next_u64(),
            body: body.into(),
        };
        env.sign(&self.key)
    }
}
