//! The roster: the members and the policy in force at a height. Genesis gives the
//! first; each governance change that takes effect gives the next. Every header names
//! the hash of the roster in force at the height after it, so a client holding only
//! genesis can follow the chain of rosters and, with them, the validator sets.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::bytes::{Hash32, PublicKey};
use crate::canonical::tagged_hash;
use crate::keys::check_bindable;
use crate::model::{
    ID_BYTES_MAX, MEMBERS_MAX, Member, Policy, Problem, Role, TEXT_BYTES_MAX, check_slug,
};
use crate::validators::{Validator, ValidatorSet};

/// Look-ups over a list of members: genesis's and every roster's.
pub trait Members {
    fn by_id(&self, id: &str) -> Option<&Member>;
    fn by_signing_key(&self, key: &PublicKey) -> Option<&Member>;
    fn by_node_key(&self, key: &PublicKey) -> Option<&Member>;
}

impl Members for [Member] {
    fn by_id(&self, id: &str) -> Option<&Member> {
        self.iter().find(|m| m.id == id)
    }

    fn by_signing_key(&self, key: &PublicKey) -> Option<&Member> {
        self.iter().find(|m| &m.signing_key == key)
    }

    fn by_node_key(&self, key: &PublicKey) -> Option<&Member> {
        self.iter().find(|m| m.node_key.as_ref() == Some(key))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    pub members: Vec<Member>,
    pub policy: Policy,
}

impl Roster {
    pub fn hash(&self) -> Hash32 {
        tagged_hash("xinlian/roster/v1", self)
    }

    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.by_id(id)
    }

    pub fn member_by_signing_key(&self, key: &PublicKey) -> Option<&Member> {
        self.members.by_signing_key(key)
    }

    pub fn member_by_node_key(&self, key: &PublicKey) -> Option<&Member> {
        self.members.by_node_key(key)
    }

    /// Node keys of every member that runs a node (validators and observers): who may
    /// connect.
    pub fn node_keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.members.iter().filter_map(|m| m.node_key.as_ref())
    }

    /// The validators in roster order, which is also their index in certificates.
    pub fn validator_set(&self) -> ValidatorSet {
        ValidatorSet::new(
            self.members
                .iter()
                .filter(|m| m.roles.contains(&Role::Validator))
                .map(|m| Validator {
                    member: m.id.clone(),
                    key: m.node_key.expect("checked: validators have node keys"),
                    power: m.voting_power,
                })
                .collect(),
        )
    }

    /// Everything wrong with the roster; empty when it can be in force. A genesis
    /// file and every governance change are held to the same rules.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems: Vec<Problem> = self
            .policy
            .problems()
            .into_iter()
            .map(Problem::Policy)
            .collect();
        if self.members.is_empty() {
            problems.push(Problem::NoMembers);
        }
        if self.members.len() > MEMBERS_MAX {
            problems.push(Problem::TooManyMembers(self.members.len()));
        }
        let mut ids = BTreeSet::new();
        let mut keys: BTreeMap<PublicKey, String> = BTreeMap::new();
        let mut total_power: u64 = 0;
        for (index, m) in self.members.iter().enumerate() {
            let id = || m.id.clone();
            if let Err(reason) = check_slug(&m.id, ID_BYTES_MAX) {
                problems.push(Problem::BadId {
                    index,
                    id: id(),
                    reason,
                });
            }
            if !ids.insert(m.id.as_str()) {
                problems.push(Problem::DuplicateMember(id()));
            }
            for (field, text) in [("name", &m.name), ("region", &m.region)] {
                if text.is_empty() || text.len() > TEXT_BYTES_MAX {
                    problems.push(Problem::BadText {
                        member: id(),
                        field,
                    });
                }
            }
            let mut roles = BTreeSet::new();
            for r in &m.roles {
                // A typed role must still read back as itself (domains are slugs).
                if let Err(reason) = Role::parse(&r.to_string()) {
                    problems.push(Problem::UnknownRole {
                        member: id(),
                        reason,
                    });
                }
                if !roles.insert(r) {
                    problems.push(Problem::DuplicateRole {
                        member: id(),
                        role: r.to_string(),
                    });
                }
            }
            let validator = roles.contains(&Role::Validator);
            let observer = roles.contains(&Role::Observer);
            if validator && observer {
                problems.push(Problem::ValidatorAndObserver(id()));
            }
            if validator && m.voting_power == 0 {
                problems.push(Problem::ZeroVotingPower(id()));
            }
            if !validator && m.voting_power != 0 {
                problems.push(Problem::PowerWithoutVote(id()));
            }
            match total_power.checked_add(m.voting_power) {
                Some(t) if t <= u64::MAX / 4 => total_power = t,
                _ => problems.push(Problem::PowerOverflow),
            }
            if (validator || observer) && m.node_key.is_none() {
                problems.push(Problem::MissingNodeKey(id()));
            }
            if !(validator || observer) && m.node_key.is_some() {
                problems.push(Problem::UnusedNodeKey(id()));
            }
            let named = [
                ("node_key", m.node_key.as_ref()),
                ("signing_key", Some(&m.signing_key)),
            ];
            for (field, k) in named {
                let Some(k) = k else { continue };
                if let Err(e) = check_bindable(k) {
                    problems.push(Problem::BadKey {
                        member: id(),
                        field,
                        reason: e.to_string(),
                    });
                }
                if let Some(first) = keys.insert(*k, id()) {
                    problems.push(Problem::DuplicateKey {
                        key: *k,
                        first,
                        second: id(),
                    });
                }
            }
        }
        if !self.members.is_empty()
            && !self
                .members
                .iter()
                .any(|m| m.roles.contains(&Role::Validator))
        {
            problems.push(Problem::NoValidators);
        }
        problems
    }
}
