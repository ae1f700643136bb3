//! The validator set in force: who votes and with what power, and the quorum rule
//! (strictly more than two thirds of the total voting power).

use serde::{Deserialize, Serialize};

use crate::bytes::{Hash32, PublicKey};
use crate::canonical::tagged_hash;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    pub member: String,
    pub key: PublicKey,
    pub power: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
}

impl ValidatorSet {
    pub fn new(validators: Vec<Validator>) -> Self {
        assert!(!validators.is_empty(), "a validator set is never empty");
        assert!(
            validators.iter().all(|v| v.power > 0),
            "validators have positive power"
        );
        ValidatorSet { validators }
    }

    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    pub fn len(&self) -> usize {
        self.validators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    pub fn hash(&self) -> Hash32 {
        tagged_hash("xinlian/validator-set/v1", self)
    }

    pub fn total_power(&self) -> u64 {
        self.validators.iter().map(|v| v.power).sum()
    }

    pub fn index_of(&self, key: &PublicKey) -> Option<usize> {
        self.validators.iter().position(|v| &v.key == key)
    }

    /// True when `power` is strictly more than two thirds of the total.
    pub fn is_quorum(&self, power: u64) -> bool {
        (power as u128) * 3 > (self.total_power() as u128) * 2
    }
}
