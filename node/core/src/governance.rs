//! Governance execution: `propose` and `vote` records change proposal state, and at
//! the end of every block the passed changes due at the next height make the roster
//! in force there. Pure like `execute`: state through the overlay, height as data.

use xinlian_client::governance::{
    Ballot, Decision, HORIZON_BLOCKS_MAX, ProposalState, RosterEntry,
};

use xinlian_client::record::{Change, Kind, Proposal, RecordId, Vote};
use xinlian_client::state::{CustodyKey, KeyBinding, MemberKey, key};
use xinlian_genesis::{Genesis, Member, PublicKey, Roster};

use crate::chain::Executed;
use crate::consortium::Consortium;
use crate::execute::{BlockContext, Ex, Rejection, need, reject, unauthorised};
use crate::overlay::{Overlay, StateError, StateRead};

fn wrong_state<T>(reason: String) -> Ex<T> {
    reject(Rejection::WrongState {
        what: "proposal",
        reason,
    })
}

/// The first key the change would give a member that an enterprise holds or once
/// held (bindings stay after revocation), with what it is bound as: `bound to USCC`,
/// or a custody key (whose enterprise is sealed).
fn enterprise_key(s: &Overlay, change: &Change) -> Result<Option<(PublicKey, String)>, StateError> {
    for (k, _) in change.named_keys() {
        if let Some(kb) = s.get::<KeyBinding>(&key::key_binding(&k))? {
            return Ok(Some((k, format!("bound to {}", kb.uscc))));
        }
        if let Some(ck) = s.get::<CustodyKey>(&key::custody_key(&k))? {
            return Ok(Some((k, format!("a custody key for domain {}", ck.domain))));
        }
    }
    Ok(None)
}

pub(crate) fn propose(
    s: &mut Overlay,
    c: &Consortium,
    ctx: &BlockContext,
    id: RecordId,
    proposer: &Member,
    p: &Proposal,
) -> Ex {
    if p.deadline < ctx.height {
        return wrong_state(format!(
            "the voting deadline {} is before this block's height {}",
            p.deadline, ctx.height
        ));
    }
    if p.effective - ctx.height > HORIZON_BLOCKS_MAX {
        return wrong_state(format!(
            "effective height {} is more than {HORIZON_BLOCKS_MAX} blocks after {}",
            p.effective, ctx.height
        ));
    }
    // Checked now against the roster in force so that nonsense never reaches a vote;
    // checked again when due, since other changes may land in between.
    if let Err(reason) = p.change.apply(&c.roster, &c.genesis.policy) {
        return wrong_state(reason);
    }
    if let Some((k, bound)) = enterprise_key(s, &p.change)? {
        return reject(Rejection::AlreadyExists {
            what: "key binding",
            id: format!("{k} ({bound})"),
        });
    }
    reserve_member_keys(s, ctx, id, &p.change)?;
    let electorate: Vec<(String, u64)> = c
        .validators
        .validators()
        .iter()
        .map(|v| (v.member.clone(), v.power))
        .collect();
    let mut state = ProposalState {
        id,
        proposer: proposer.id.clone(),
        change: p.change.clone(),
        reason: p.reason.clone(),
        proposed_at: ctx.height,
        deadline: p.deadline,
        effective: p.effective,
        electorate,
        ballots: Vec::new(),
        decision: Decision::Open,
    };
    // Proposing is approving, when the proposer has a vote.
    if let Some(power) = power_of(&state, &proposer.id) {
        state.count(Ballot {
            member: proposer.id.clone(),
            approve: true,
            power,
            record: id,
            height: ctx.height,
        });
    }
    settle(s, &state)?;
    s.put(key::proposal(&id), &state);
    Ok(())
}

/// Marks every key the change names as a member's from now on, passed or not: no
/// enterprise can then bind it, so none can make a passed change fail at its
/// effective height by binding its key first. (Its holder proved possession; a key
/// named twice keeps the first naming.)
fn reserve_member_keys(s: &mut Overlay, ctx: &BlockContext, id: RecordId, change: &Change) -> Ex {
    for (k, member) in change.named_keys() {
        if s.get_raw(&key::member_key(&k))?.is_none() {
            s.put(
                key::member_key(&k),
                &MemberKey {
                    member: member.to_string(),
                    proposal: id,
                    height: ctx.height,
                },
            );
        }
    }
    Ok(())
}

/// The member `k` is or ever was named for — in genesis, in the roster in force, or by
/// any proposal on the ledger (which every later roster's keys came through) — if any.
/// Genesis and the roster are in memory; the rest is one state read.
pub(crate) fn member_key_owner(
    s: &Overlay,
    c: &Consortium,
    k: &PublicKey,
) -> Result<Option<String>, StateError> {
    let in_roster = |members: &[Member]| {
        members
            .iter()
            .find(|m| m.signing_key == *k || m.node_key == Some(*k))
            .map(|m| m.id.clone())
    };
    if let Some(m) = in_roster(&c.roster.members).or_else(|| in_roster(&c.genesis.members)) {
        return Ok(Some(m));
    }
    Ok(s.get::<MemberKey>(&key::member_key(k))?.map(|mk| mk.member))
}

fn power_of(p: &ProposalState, member: &str) -> Option<u64> {
    p.electorate
        .iter()
        .find(|(m, _)| m == member)
        .map(|(_, power)| *power)
}

/// A proposal that has just passed is due at its effective height.
fn settle(s: &mut Overlay, p: &ProposalState) -> Ex {
    if matches!(p.decision, Decision::Passed { .. }) {
        let k = key::scheduled(p.effective);
        let mut due: Vec<RecordId> = s.get(&k)?.unwrap_or_default();
        due.push(p.id);
        s.put(k, &due);
    }
    Ok(())
}

pub(crate) fn vote(
    s: &mut Overlay,
    ctx: &BlockContext,
    id: RecordId,
    voter: &Member,
    v: &Vote,
) -> Ex {
    let mut p: ProposalState = need(s.get(&key::proposal(&v.proposal))?, "proposal", v.proposal)?;
    if ctx.height > p.deadline {
        return wrong_state(format!(
            "voting on {} closed at height {} (this block is {})",
            v.proposal, p.deadline, ctx.height
        ));
    }
    match &p.decision {
        Decision::Open => {}
        Decision::Passed { height } | Decision::Rejected { height } => {
            return wrong_state(format!(
                "{} was already decided at height {height}: {}",
                v.proposal,
                p.status(ctx.height).name()
            ));
        }
        Decision::NotApplied { .. } => unreachable!("only passed proposals are applied"),
    }
    let Some(power) = power_of(&p, &voter.id) else {
        return unauthorised(
            Kind::Vote,
            format!(
                "member '{}' was not a validator when {} was proposed (height {}), so it has no vote on it",
                voter.id, v.proposal, p.proposed_at
            ),
        );
    };
    if p.ballots.iter().any(|b| b.member == voter.id) {
        return reject(Rejection::AlreadyExists {
            what: "vote",
            id: format!("of '{}' on {}", voter.id, v.proposal),
        });
    }
    p.count(Ballot {
        member: voter.id.clone(),
        approve: v.approve,
        power,
        record: id,
        height: ctx.height,
    });
    settle(s, &p)?;
    s.put(key::proposal(&v.proposal), &p);
    Ok(())
}

/// The roster in force at `next`, if passed changes fall due there: each applied in
/// the order it passed to the roster `c` holds; one that no longer fits is kept as
/// not applied, with the reason, and changes nothing.
pub(crate) fn next_roster(
    s: &mut Overlay,
    c: &Consortium,
    next: u64,
) -> Result<Option<Roster>, StateError> {
    let Some(due) = s.get::<Vec<RecordId>>(&key::scheduled(next))? else {
        return Ok(None);
    };
    let mut roster = c.roster.clone();
    let mut applied = Vec::new();
    for id in due {
        let mut p: ProposalState = s
            .get(&key::proposal(&id))?
            .expect("scheduled proposals are stored");
        let outcome = match enterprise_key(s, &p.change)? {
            Some((k, bound)) => Err(format!("key {k} has since been {bound}")),
            None => p.change.apply(&roster, &c.genesis.policy),
        };
        match outcome {
            Ok(r) => {
                roster = r;
                applied.push(id);
            }
            Err(reason) => {
                p.decision = Decision::NotApplied {
                    height: next,
                    reason,
                };
                s.put(key::proposal(&id), &p);
            }
        }
    }
    if applied.is_empty() {
        return Ok(None);
    }
    s.put(
        key::roster(next),
        &RosterEntry {
            height: next,
            roster: roster.clone(),
            proposals: applied,
            previous: c.since,
        },
    );
    s.put(key::roster_latest(), &next);
    Ok(Some(roster))
}

/// The consortium in force at `height`, from state at or after the block before it:
/// the newest roster, then back along `previous` to the one in force then.
pub fn consortium_at(
    state: &dyn StateRead,
    genesis: &Genesis,
    height: u64,
) -> Result<Consortium, StateError> {
    let s = Overlay::new(state);
    let mut at: u64 = s.get(&key::roster_latest())?.unwrap_or(1);
    while at > 1 {
        let entry: RosterEntry = s
            .get(&key::roster(at))?
            .ok_or_else(|| StateError::Corrupt {
                key: format!("roster at {at}"),
                reason: "named by a later roster but missing".into(),
            })?;
        if at <= height {
            return Ok(Consortium::with_roster(genesis.clone(), entry.roster, at));
        }
        at = entry.previous;
    }
    Ok(Consortium::new(genesis.clone()))
}

/// The roster that `ex`'s block made, when its header announces a change.
pub fn announced(ex: &Executed) -> Option<RosterEntry> {
    let k = key::roster(ex.header.height + 1);
    let bytes = ex.writes.get(&k)?.as_ref()?;
    Some(
        xinlian_genesis::canonical::decode(bytes, usize::MAX)
            .expect("the block's own writes decode"),
    )
}
