//! The consortium as execution sees it at one height: genesis, the roster in force and
//! since when, its validator set, and the member look-ups by key, built once per roster.

use std::collections::HashMap;

use xinlian_genesis::{Genesis, Hash32, Member, Policy, PublicKey, Roster, ValidatorSet};

/// The genesis and the roster in force at one height, with the look-ups execution
/// needs, built once per roster.
#[derive(Debug, PartialEq, Eq)]
pub struct Consortium {
    pub genesis: Genesis,
    pub chain: Hash32,
    pub roster: Roster,
    pub roster_hash: Hash32,
    /// The height from which `roster` is in force.
    pub since: u64,
    pub validators: ValidatorSet,
    by_signing_key: HashMap<PublicKey, usize>,
}

impl Consortium {
    /// The consortium at height 1.
    pub fn new(genesis: Genesis) -> Self {
        let roster = genesis.roster();
        Consortium::with_roster(genesis, roster, 1)
    }

    pub fn with_roster(genesis: Genesis, roster: Roster, since: u64) -> Self {
        debug_assert!(roster.problems().is_empty(), "rosters in force are valid");
        let by_signing_key = roster
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.signing_key, i))
            .collect();
        Consortium {
            chain: genesis.hash(),
            validators: roster.validator_set(),
            roster_hash: roster.hash(),
            by_signing_key,
            roster,
            since,
            genesis,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.roster.policy
    }

    pub fn member_by_signing_key(&self, k: &PublicKey) -> Option<&Member> {
        self.by_signing_key.get(k).map(|&i| &self.roster.members[i])
    }
}
