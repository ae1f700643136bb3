//! Governance on a chain of real blocks (built and finished by `chain`, so rosters move
//! exactly as on a node): what passes, when it takes effect, and every refusal.

mod common;

use std::collections::BTreeMap;

use xinlian_client::governance::{Decision, ProposalState, Status};
use xinlian_client::ids::Uscc;
use xinlian_client::record::*;
use xinlian_client::signer::RecordSigner;
use xinlian_client::state::key;
use xinlian_core::chain::{Tip, build_block, check_records};
use xinlian_core::execute::{Consortium, Rejection};
use xinlian_core::governance::consortium_at;
use xinlian_genesis::keys::{SigningKey, generate, public_key};
use xinlian_genesis::{Member, Policy, Role, canonical};

struct Chain {
    c: Consortium,
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    tip: Tip,
}

impl Chain {
    fn new() -> Chain {
        let c = common::consortium(4, "xinlian-governance", Policy::default());
        let c = Consortium::new(c.genesis.clone());
        let tip = Tip::genesis(&c);
        Chain {
            c,
            state: BTreeMap::new(),
            tip,
        }
    }

    fn signer(&self, key: SigningKey) -> RecordSigner {
        RecordSigner {
            key,
            chain: self.c.chain,
        }
    }

    /// Validator `i`'s agency key (the one that proposes and votes).
    fn v(&self, i: usize) -> RecordSigner {
        self.signer(common::key(3, i))
    }

    /// Finalizes the next block with `records`; every one must be accepted.
    fn block(&mut self, records: &[SignedRecord]) {
        let encoded: Vec<EncodedRecord> = records.iter().cloned().map(EncodedRecord::new).collect();
        let proposer = self.c.validators.validators()[0].key;
        let (ex, rejected) = build_block(
            &self.state,
            &self.c,
            &self.tip,
            proposer,
            self.tip.time_ms + 200,
            &encoded,
        )
        .unwrap();
        assert!(rejected.is_empty(), "refused: {rejected:?}");
        assert_eq!(ex.records.len(), records.len());
        assert_eq!(ex.header.validators_hash, self.c.validators.hash());
        for (k, v) in ex.writes {
            match v {
                Some(v) => self.state.insert(k, v),
                None => self.state.remove(&k),
            };
        }
        self.tip = ex.tip;
        if ex.header.next_roster_hash != self.c.roster_hash {
            self.c = consortium_at(&self.state, &self.c.genesis, self.tip.height + 1).unwrap();
            assert_eq!(self.c.roster_hash, ex.header.next_roster_hash);
        }
    }

    fn blocks_until(&mut self, height: u64) {
        while self.tip.height < height {
            self.block(&[]);
        }
    }

    /// The verdict on `rec` in the next block, changing nothing.
    fn refuse(&self, rec: SignedRecord) -> Rejection {
        let before = self.state.clone();
        let v = check_records(
            &self.state,
            &self.c,
            &self.tip,
            self.tip.time_ms + 200,
            &[EncodedRecord::new(rec)],
        )
        .unwrap();
        assert_eq!(before, self.state);
        v.into_iter().next().unwrap().expect("expected a refusal")
    }

    fn proposal(&self, id: &RecordId) -> ProposalState {
        canonical::decode(&self.state[&key::proposal(id)], usize::MAX).unwrap()
    }

    /// A proposal by validator `i`, with proofs of possession made by the fixture's
    /// own keys (agency keys, node keys, the registrar's).
    fn propose(&self, by: usize, change: Change, deadline: u64, effective: u64) -> SignedRecord {
        self.propose_with(by, change, deadline, effective, &[])
    }

    /// As [`Chain::propose`], with `keys` also at hand for the proofs.
    fn propose_with(
        &self,
        by: usize,
        change: Change,
        deadline: u64,
        effective: u64,
        keys: &[&SigningKey],
    ) -> SignedRecord {
        let own: Vec<SigningKey> = (0..4)
            .flat_map(|i| [common::key(3, i), common::node_key(i)])
            .chain([common::registrar()])
            .collect();
        let all: Vec<&SigningKey> = own.iter().chain(keys.iter().copied()).collect();
        let possession = common::member_possession(&self.c.chain, &change, &all);
        self.v(by).sign(Proposal {
            change,
            reason: "test".into(),
            deadline,
            effective,
            possession,
        })
    }

    fn vote(&self, by: usize, proposal: RecordId, approve: bool) -> SignedRecord {
        self.v(by).sign(Vote { proposal, approve })
    }
}

fn newcomer(node: &SigningKey, agency: &SigningKey) -> Member {
    Member {
        id: "jiangsu".into(),
        name: "Jiangsu credit centre".into(),
        region: "320000".into(),
        roles: vec![Role::Validator, Role::Registrar],
        voting_power: 1,
        node_key: Some(public_key(node)),
        signing_key: public_key(agency),
    }
}

#[test]
fn a_change_passes_with_more_than_two_thirds_and_takes_effect_at_its_height() {
    let mut ch = Chain::new();
    let (node, agency) = (generate().unwrap(), generate().unwrap());
    let p = ch.propose_with(
        0,
        Change::AddMember(newcomer(&node, &agency)),
        5,
        8,
        &[&node, &agency],
    );
    let id = p.id();
    let genesis_roster = ch.c.roster_hash;
    ch.block(&[p]);
    // The proposer's approval counts: 1 of 4.
    assert_eq!(ch.proposal(&id).power_for(true), 1);
    ch.block(&[ch.vote(1, id, true)]);
    // 2 of 4 is not more than two thirds.
    assert_eq!(ch.proposal(&id).decision, Decision::Open);
    assert_eq!(ch.proposal(&id).status(2), Status::Open);
    ch.block(&[ch.vote(2, id, true)]);
    assert_eq!(ch.proposal(&id).decision, Decision::Passed { height: 3 });
    // Decided: a further vote is refused, the tally stays.
    let e = ch.refuse(ch.vote(3, id, true));
    assert!(matches!(e, Rejection::WrongState { .. }), "{e}");
    assert!(e.to_string().contains("already decided at height 3"), "{e}");

    // Nothing changes before the stated height; block 7 announces, 8 is the first
    // under the new roster, on every node alike (the roster is a header field).
    ch.blocks_until(6);
    assert_eq!(ch.c.roster_hash, genesis_roster);
    assert_eq!(ch.c.validators.len(), 4);
    ch.block(&[]);
    assert_eq!(ch.c.since, 8);
    assert_eq!(ch.c.validators.len(), 5);
    assert!(ch.c.validators.index_of(&public_key(&node)).is_some());
    // The new member's agency key is a member's from then on: it may register.
    let reg = ch.signer(agency).sign(common::register(
        &ch.c.chain,
        &Uscc::with_check("91320000MA1XYA123").unwrap(),
        "Suzhou Rice Co.",
        &generate().unwrap(),
    ));
    ch.block(&[reg]);
}

#[test]
fn without_enough_power_a_proposal_expires_and_changes_nothing() {
    let mut ch = Chain::new();
    let p = ch.propose(
        0,
        Change::RemoveMember {
            member: "v3".into(),
        },
        3,
        5,
    );
    let id = p.id();
    let before = ch.c.roster_hash;
    ch.block(&[p]);
    ch.block(&[ch.vote(1, id, true)]);
    ch.block(&[]);
    // Block 4 is after the deadline: the vote that would have passed it is refused.
    let e = ch.refuse(ch.vote(2, id, true));
    assert!(e.to_string().contains("closed at height 3"), "{e}");
    ch.blocks_until(10);
    assert_eq!(ch.c.roster_hash, before);
    assert_eq!(ch.c.validators.len(), 4);
    let st = ch.proposal(&id);
    assert_eq!(st.status(ch.tip.height), Status::Expired);
    assert_eq!((st.power_for(true), st.total_power()), (2, 4));
}

#[test]
fn enough_rejections_decide_a_proposal_rejected() {
    let mut ch = Chain::new();
    let p = ch.propose(
        0,
        Change::SetPolicy(Policy {
            block_interval_ms: 500,
            ..Policy::default()
        }),
        20,
        30,
    );
    let id = p.id();
    ch.block(&[p, ch.vote(1, id, false)]);
    assert_eq!(ch.proposal(&id).decision, Decision::Open);
    // 2 of 4 against: approvals can reach 2 at most, never more than two thirds.
    ch.block(&[ch.vote(2, id, false)]);
    assert_eq!(ch.proposal(&id).decision, Decision::Rejected { height: 2 });
    ch.blocks_until(31);
    assert_eq!(
        ch.c.policy().block_interval_ms,
        Policy::default().block_interval_ms
    );
}

#[test]
fn votes_and_proposals_are_refused_precisely() {
    let mut ch = Chain::new();
    let p = ch.propose(
        0,
        Change::SetRoles {
            member: "registrar".into(),
            roles: vec![Role::Registrar, Role::CreditAuthority("market".into())],
            voting_power: 0,
        },
        10,
        12,
    );
    let id = p.id();
    ch.block(&[p]);

    // Not a member at all.
    let stranger = ch.signer(generate().unwrap());
    let e = ch.refuse(stranger.sign(Vote {
        proposal: id,
        approve: true,
    }));
    assert!(matches!(e, Rejection::UnknownSigner(_)), "{e}");
    // A member without a vote (the registrar holds no voting power).
    let e = ch.refuse(ch.signer(common::registrar()).sign(Vote {
        proposal: id,
        approve: true,
    }));
    assert!(matches!(e, Rejection::Unauthorised { .. }), "{e}");
    assert!(e.to_string().contains("was not a validator when"), "{e}");
    // Twice by one member, the proposer included.
    let e = ch.refuse(ch.vote(0, id, true));
    assert!(matches!(e, Rejection::AlreadyExists { .. }), "{e}");
    // A proposal that does not exist.
    let e = ch.refuse(ch.vote(1, RecordId([7; 32]), true));
    assert!(
        matches!(
            e,
            Rejection::NotFound {
                what: "proposal",
                ..
            }
        ),
        "{e}"
    );

    // Proposals: a deadline already past, an effective height not after it, a change
    // the roster could not hold, and an enterprise as proposer.
    let e = ch.refuse(ch.propose(
        1,
        Change::RemoveMember {
            member: "v3".into(),
        },
        1,
        5,
    ));
    assert!(e.to_string().contains("deadline 1 is before"), "{e}");
    let e = ch.refuse(ch.propose(
        1,
        Change::RemoveMember {
            member: "v3".into(),
        },
        9,
        9,
    ));
    assert_eq!(e.code(), "invalid_field", "{e}");
    let e = ch.refuse(ch.propose(
        1,
        Change::RemoveMember {
            member: "nobody".into(),
        },
        9,
        10,
    ));
    assert!(
        e.to_string().contains("'nobody' is not in the roster"),
        "{e}"
    );
    let e = ch.refuse(ch.propose(
        1,
        Change::SetRoles {
            member: "v0".into(),
            roles: vec![Role::Validator],
            voting_power: 0,
        },
        9,
        10,
    ));
    assert!(e.to_string().contains("zero voting power"), "{e}");
    let taken = ch.c.roster.member("v1").unwrap().signing_key;
    let e = ch.refuse(ch.propose(
        1,
        Change::RotateSigningKey {
            member: "v2".into(),
            key: taken,
        },
        9,
        10,
    ));
    assert!(e.to_string().contains("is used by both"), "{e}");
    let ent = generate().unwrap();
    let u = Uscc::with_check("91310000MA1ABC123").unwrap();
    ch.block(&[ch.signer(common::registrar()).sign(common::register(
        &ch.c.chain,
        &u,
        "Shanghai Foods",
        &ent,
    ))]);
    let e = ch.refuse(ch.signer(ent.clone()).sign(Proposal {
        change: Change::RemoveMember {
            member: "v3".into(),
        },
        reason: "x".into(),
        deadline: 9,
        effective: 10,
        possession: Vec::new(),
    }));
    assert!(matches!(e, Rejection::Unauthorised { .. }), "{e}");
    // An enterprise's key cannot become a member's.
    let e = ch.refuse(ch.propose_with(
        1,
        Change::RotateSigningKey {
            member: "v2".into(),
            key: public_key(&ent),
        },
        9,
        10,
        &[&ent],
    ));
    assert_eq!(e.code(), "already_exists", "{e}");
}

#[test]
fn a_change_naming_a_key_needs_its_holders_proof_of_possession() {
    let ch = Chain::new();
    let (node, agency) = (generate().unwrap(), generate().unwrap());
    let add = Change::AddMember(newcomer(&node, &agency));
    let proposal = |possession| Proposal {
        change: add.clone(),
        reason: "x".into(),
        deadline: 9,
        effective: 10,
        possession,
    };
    // None, or only one of the two keys the change names.
    let e = ch.refuse(ch.v(0).sign(proposal(Vec::new())));
    assert_eq!(e.code(), "invalid_field", "{e}");
    assert!(e.to_string().contains("names 2 key(s)"), "{e}");
    let good = common::member_possession(&ch.c.chain, &add, &[&node, &agency]);
    let e = ch.refuse(ch.v(0).sign(proposal(good[..1].to_vec())));
    assert_eq!(e.code(), "invalid_field", "{e}");
    // In the wrong order, for another member, or for another chain.
    let e = ch.refuse(ch.v(0).sign(proposal(vec![good[1], good[0]])));
    assert_eq!(e.code(), "bad_possession", "{e}");
    let rename = Change::RotateSigningKey {
        member: "v3".into(),
        key: public_key(&agency),
    };
    let for_v3 = common::member_possession(&ch.c.chain, &rename, &[&agency]);
    let e = ch.refuse(ch.v(0).sign(proposal(vec![for_v3[0], good[1]])));
    assert_eq!(e.code(), "bad_possession", "{e}");
    assert!(e.to_string().contains("member 'jiangsu'"), "{e}");
    let elsewhere =
        common::member_possession(&xinlian_genesis::Hash32([7; 32]), &add, &[&node, &agency]);
    let e = ch.refuse(ch.v(0).sign(proposal(elsewhere)));
    assert_eq!(e.code(), "bad_possession", "{e}");
    // A member cannot claim a key it does not hold: made with another key.
    let forged = common::member_possession(&ch.c.chain, &rename, &[&agency]);
    let e = ch.refuse(ch.v(0).sign(Proposal {
        change: Change::RotateSigningKey {
            member: "v3".into(),
            key: public_key(&node),
        },
        reason: "x".into(),
        deadline: 9,
        effective: 10,
        possession: forged,
    }));
    assert_eq!(e.code(), "bad_possession", "{e}");
    // With both, in order, it is accepted.
    let ok = check_records(
        &ch.state,
        &ch.c,
        &ch.tip,
        ch.tip.time_ms + 200,
        &[EncodedRecord::new(ch.v(0).sign(proposal(good)))],
    )
    .unwrap();
    assert!(ok[0].is_none(), "{ok:?}");
}

#[test]
fn a_rotated_member_key_is_refused_from_its_effective_height_and_a_clash_is_not_applied() {
    let mut ch = Chain::new();
    let new_key = generate().unwrap();
    let rotate = ch.propose_with(
        0,
        Change::RotateSigningKey {
            member: "registrar".into(),
            key: public_key(&new_key),
        },
        4,
        6,
        &[&new_key],
    );
    // Passed at the same height, due at the same height: the second names a member
    // the first removes, so it is kept as not applied and changes nothing.
    let remove = ch.propose(
        0,
        Change::RemoveMember {
            member: "v3".into(),
        },
        4,
        6,
    );
    let clash = ch.propose(
        1,
        Change::SetRoles {
            member: "v3".into(),
            roles: vec![Role::Validator, Role::Registrar],
            voting_power: 2,
        },
        4,
        6,
    );
    let ids = [rotate.id(), remove.id(), clash.id()];
    ch.block(&[rotate, remove, clash]);
    // With the proposer's, three of four approve each.
    let mut votes = Vec::new();
    for (id, voters) in ids.iter().zip([[1, 2], [1, 2], [0, 2]]) {
        for v in voters {
            votes.push(ch.vote(v, *id, true));
        }
    }
    ch.block(&votes);
    for id in &ids {
        assert!(matches!(
            ch.proposal(id).decision,
            Decision::Passed { height: 2 }
        ));
    }
    let old = ch.signer(common::registrar());
    let register = |s: &RecordSigner, n: u32| {
        s.sign(common::register(
            &s.chain,
            &Uscc::with_check(&format!("91310000MA1AB{n:04}")).unwrap(),
            &format!("Enterprise {n}"),
            &generate().unwrap(),
        ))
    };
    ch.blocks_until(4);
    // Block 5 is the last under the old key.
    ch.block(&[register(&old, 1)]);
    assert_eq!(ch.c.since, 6);
    let e = ch.refuse(register(&old, 2));
    assert!(matches!(e, Rejection::UnknownSigner(_)), "{e}");
    ch.block(&[register(&ch.signer(new_key), 3)]);
    assert!(ch.c.roster.member("v3").is_none());
    assert_eq!(ch.c.validators.len(), 3);
    match ch.proposal(&ids[2]).decision {
        Decision::NotApplied { height: 6, reason } => {
            assert!(reason.contains("'v3' is not in the roster"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ch.proposal(&ids[2]).status(ch.tip.height),
        Status::NotApplied
    );
}

#[test]
fn a_former_member_key_is_never_bindable_to_an_enterprise() {
    let mut ch = Chain::new();
    let new_key = generate().unwrap();
    let rotate = ch.propose_with(
        0,
        Change::RotateSigningKey {
            member: "registrar".into(),
            key: public_key(&new_key),
        },
        3,
        5,
        &[&new_key],
    );
    let id = rotate.id();
    ch.block(&[rotate]);
    ch.block(&[ch.vote(1, id, true), ch.vote(2, id, true)]);
    ch.blocks_until(5);
    assert_eq!(ch.c.since, 5);
    let registrar = ch.signer(new_key);
    let ent = generate().unwrap();
    let u = Uscc::with_check("91310000MA1ABC123").unwrap();
    ch.block(&[registrar.sign(common::register(&ch.c.chain, &u, "Shanghai Foods", &ent))]);
    // The old registrar key, no longer any member's: neither the enterprise itself
    // nor a registrar may bind it.
    // (Whoever holds the old key can prove possession of it; that is not enough.)
    let old = common::registrar();
    let e = ch.refuse(
        ch.signer(ent.clone())
            .sign(common::rotate(&ch.c.chain, &u, &old)),
    );
    assert_eq!(e.code(), "member_key", "{e}");
    assert!(e.to_string().contains("member 'registrar'"), "{e}");
    let e = ch.refuse(registrar.sign(common::register(
        &ch.c.chain,
        &Uscc::with_check("91310000MA1ABC456").unwrap(),
        "Old Key Co.",
        &old,
    )));
    assert_eq!(e.code(), "member_key", "{e}");
    // A genesis node key, never a signing key, is a member key too.
    let e = ch.refuse(registrar.sign(common::register(
        &ch.c.chain,
        &Uscc::with_check("91310000MA1ABC789").unwrap(),
        "Node Key Co.",
        &common::node_key(3),
    )));
    assert_eq!(e.code(), "member_key", "{e}");
}

#[test]
fn an_enterprise_cannot_bind_a_key_named_in_a_passed_change() {
    let mut ch = Chain::new();
    let ent = generate().unwrap();
    let u = Uscc::with_check("91310000MA1ABC123").unwrap();
    ch.block(&[ch.signer(common::registrar()).sign(common::register(
        &ch.c.chain,
        &u,
        "Shanghai Foods",
        &ent,
    ))]);
    // The key v2 rotates to: whoever holds it cannot also bind it to an enterprise
    // between the change passing and its taking effect, and so cannot veto it.
    let k = generate().unwrap();
    let rotate = ch.propose_with(
        0,
        Change::RotateSigningKey {
            member: "v2".into(),
            key: public_key(&k),
        },
        4,
        7,
        &[&k],
    );
    let id = rotate.id();
    ch.block(&[rotate]);
    ch.block(&[ch.vote(1, id, true), ch.vote(2, id, true)]);
    assert!(matches!(ch.proposal(&id).decision, Decision::Passed { .. }));
    let e = ch.refuse(ch.signer(ent).sign(common::rotate(&ch.c.chain, &u, &k)));
    assert_eq!(e.code(), "member_key", "{e}");
    ch.blocks_until(7);
    assert_eq!(ch.c.since, 7);
    assert_eq!(
        ch.c.roster.member("v2").unwrap().signing_key,
        public_key(&k)
    );
}
