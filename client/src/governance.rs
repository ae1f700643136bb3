//! Governance: what a proposal does to the roster, and how votes are tallied. Pure, so
//! that the node's execution and any reader of the ledger apply the very same rules
//! (docs/governance.md).

use serde::{Deserialize, Serialize};
use xinlian_genesis::{Policy, PublicKey, Roster};

use crate::record::{Change, RecordId};

/// Most blocks a proposal may stay open, and most blocks between its record and the
/// height it takes effect: a consortium decides within days, not years, and nodes
/// keep every open proposal in state.
pub const HORIZON_BLOCKS_MAX: u64 = 10_000_000;

impl Change {
    /// The roster after the change, or why it cannot be in force. `genesis` bounds the
    /// sizes nodes built their network frames for, which a policy change cannot raise.
    pub fn apply(&self, roster: &Roster, genesis: &Policy) -> Result<Roster, String> {
        let mut next = roster.clone();
        let find = |next: &mut Roster, id: &str| -> Result<usize, String> {
            next.members
                .iter()
                .position(|m| m.id == id)
                .ok_or_else(|| format!("member '{id}' is not in the roster"))
        };
        match self {
            Change::AddMember(m) => {
                if roster.member(&m.id).is_some() {
                    return Err(format!("member '{}' is already in the roster", m.id));
                }
                let mut m = m.clone();
                m.roles.sort();
                next.members.push(m);
            }
            Change::RemoveMember { member } => {
                let i = find(&mut next, member)?;
                next.members.remove(i);
            }
            Change::SetRoles {
                member,
                roles,
                voting_power,
            } => {
                let i = find(&mut next, member)?;
                let mut roles = roles.clone();
                roles.sort();
                next.members[i].roles = roles;
                next.members[i].voting_power = *voting_power;
            }
            Change::RotateNodeKey { member, key } => {
                let i = find(&mut next, member)?;
                if next.members[i].node_key == Some(*key) {
                    return Err(format!("member '{member}' already has node key {key}"));
                }
                next.members[i].node_key = Some(*key);
            }
            Change::RotateSigningKey { member, key } => {
                let i = find(&mut next, member)?;
                if next.members[i].signing_key == *key {
                    return Err(format!("member '{member}' already has signing key {key}"));
                }
                next.members[i].signing_key = *key;
            }
            Change::SetPolicy(p) => {
                if p.block_bytes_max > genesis.block_bytes_max {
                    return Err(format!(
                        "block_bytes_max {} exceeds the genesis value {}, which nodes size their network frames for",
                        p.block_bytes_max, genesis.block_bytes_max
                    ));
                }
                let (old, new) = (&next.policy.grading, &p.grading);
                if new != old && new.version <= old.version {
                    return Err(format!(
                        "the grading rules change but their version {} does not rise above {}",
                        new.version, old.version
                    ));
                }
                if new.version != old.version && new.without_version() == old.without_version() {
                    return Err(format!(
                        "the grading rules are unchanged but their version moves from {} to {}",
                        old.version, new.version
                    ));
                }
                next.policy = p.clone();
            }
        }
        let problems = next.problems();
        if !problems.is_empty() {
            let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            return Err(format!("the roster would be invalid: {}", list.join("; ")));
        }
        Ok(next)
    }

    /// The keys the change gives a member, each with the member's id: what its
    /// proposal proves possession of, in this order (an added member's signing key,
    /// then its node key).
    pub fn named_keys(&self) -> Vec<(PublicKey, &str)> {
        match self {
            Change::AddMember(m) => std::iter::once(m.signing_key)
                .chain(m.node_key)
                .map(|k| (k, m.id.as_str()))
                .collect(),
            Change::RotateNodeKey { member, key } | Change::RotateSigningKey { member, key } => {
                vec![(*key, member.as_str())]
            }
            Change::RemoveMember { .. } | Change::SetRoles { .. } | Change::SetPolicy(_) => {
                Vec::new()
            }
        }
    }

    /// A short description for lists and logs.
    pub fn summary(&self) -> String {
        match self {
            Change::AddMember(m) => {
                let roles: Vec<String> = m.roles.iter().map(|r| r.to_string()).collect();
                format!(
                    "add member '{}' ({}; power {})",
                    m.id,
                    roles.join(", "),
                    m.voting_power
                )
            }
            Change::RemoveMember { member } => format!("remove member '{member}'"),
            Change::SetRoles {
                member,
                roles,
                voting_power,
            } => {
                let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
                format!(
                    "set roles of '{member}' to {} (power {voting_power})",
                    roles.join(", ")
                )
            }
            Change::RotateNodeKey { member, key } => {
                format!("rotate the node key of '{member}' to {key}")
            }
            Change::RotateSigningKey { member, key } => {
                format!("rotate the signing key of '{member}' to {key}")
            }
            Change::SetPolicy(_) => "change the policy".into(),
        }
    }
}

/// One member's vote as counted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ballot {
    pub member: String,
    pub approve: bool,
    pub power: u64,
    /// The `vote` record, or the proposal itself for the proposer's approval.
    pub record: RecordId,
    pub height: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Open,
    /// More than two thirds of the electorate's power approved at `height`.
    Passed {
        height: u64,
    },
    /// So much power rejected at `height` that the proposal can no longer pass.
    Rejected {
        height: u64,
    },
    /// Passed, but at its effective height the change no longer fit the roster (an
    /// earlier change removed the member, took the key…); nothing changed.
    NotApplied {
        height: u64,
        reason: String,
    },
}

/// A proposal with its tally: kept in state forever, so that expired and rejected
/// proposals stay in history beside the passed ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalState {
    pub id: RecordId,
    pub proposer: String,
    pub change: Change,
    pub reason: String,
    pub proposed_at: u64,
    pub deadline: u64,
    pub effective: u64,
    /// The validators when the proposal was made, with their power: who may vote.
    pub electorate: Vec<(String, u64)>,
    pub ballots: Vec<Ballot>,
    pub decision: Decision,
}

/// How a proposal reads at a height, for lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Passed,
    Rejected,
    /// Open past its deadline without enough approvals.
    Expired,
    NotApplied,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Passed => "passed",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
            Status::NotApplied => "not_applied",
        }
    }

    pub fn from_name(s: &str) -> Option<Status> {
        [
            Status::Open,
            Status::Passed,
            Status::Rejected,
            Status::Expired,
            Status::NotApplied,
        ]
        .into_iter()
        .find(|x| x.name() == s)
    }
}

impl ProposalState {
    pub fn total_power(&self) -> u64 {
        self.electorate.iter().map(|(_, p)| p).sum()
    }

    pub fn power_for(&self, approve: bool) -> u64 {
        self.ballots
            .iter()
            .filter(|b| b.approve == approve)
            .map(|b| b.power)
            .sum()
    }

    /// Counts a ballot and decides when the tally allows: passed once approvals hold
    /// more than two thirds of the power, rejected once they no longer can.
    pub fn count(&mut self, ballot: Ballot) {
        assert_eq!(
            self.decision,
            Decision::Open,
            "ballots only on open proposals"
        );
        let height = ballot.height;
        self.ballots.push(ballot);
        let (total, yes, no) = (
            self.total_power() as u128,
            self.power_for(true) as u128,
            self.power_for(false) as u128,
        );
        if yes * 3 > total * 2 {
            self.decision = Decision::Passed { height };
        } else if (total - no) * 3 <= total * 2 {
            self.decision = Decision::Rejected { height };
        }
    }

    /// The status as of a chain whose last block is at `height`.
    pub fn status(&self, height: u64) -> Status {
        match self.decision {
            Decision::Open if height > self.deadline => Status::Expired,
            Decision::Open => Status::Open,
            Decision::Passed { .. } => Status::Passed,
            Decision::Rejected { .. } => Status::Rejected,
            Decision::NotApplied { .. } => Status::NotApplied,
        }
    }
}

/// A roster that took effect, with the proposals that made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterEntry {
    pub height: u64,
    pub roster: Roster,
    pub proposals: Vec<RecordId>,
    /// The height the replaced roster took effect (1 for genesis's): rosters chain
    /// backwards from the newest, which `state::key::roster_latest` names.
    pub previous: u64,
}
