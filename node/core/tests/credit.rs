//! Credit records end to end on a chain of real, certified blocks (built by `chain`,
//! signed by all four validators): a light client holding only genesis checks an
//! enterprise's complete credit record, recomputes its profile and grade, and refuses
//! every tampered answer with an error naming what is wrong; claims of absence hold
//! only when no record refutes them; a grading-rules change by governance applies from
//! its height, and older grades stay reproducible under the rules then in force.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use xinlian_client::block::{Certificate, CommitSignature, Precommit};
use xinlian_client::credit::{
    CREDIT_REPORT_FORMAT, CreditError, CreditProof, CreditReport, VerifiedCredit, grade,
};
use xinlian_client::ids::Uscc;
use xinlian_client::merkle::{Leaves, inclusion_proof, leaf_hash};
use xinlian_client::proof::{Checkpoint, HexBytes, LedgerEntry, LightClient, RosterChange};
use xinlian_client::record::*;
use xinlian_client::smt;
use xinlian_client::state::{self as st, key};
use xinlian_client::when::Date;
use xinlian_core::chain::{Tip, build_block};
use xinlian_core::execute::Consortium;
use xinlian_core::governance::consortium_at;
use xinlian_core::index::{Committed, Index};
use xinlian_genesis::grading::{Grade, Grading};
use xinlian_genesis::keys::{SigningKey, public_key};
use xinlian_genesis::{Hash32, Policy, Role, canonical};

const DAY_MS: i64 = 86_400_000;

type State = BTreeMap<Vec<u8>, Vec<u8>>;

/// A consortium of four validators, a registrar and two credit authorities (`market`
/// for the market domain, `food` for food), and its chain.
struct Ledger {
    c: Consortium,
    genesis: xinlian_genesis::Genesis,
    state: State,
    tip: Tip,
    records: Vec<EncodedRecord>,
    /// After each height h (index h - 1): its checkpoint and the state.
    heights: Vec<(Checkpoint, State)>,
    changes: Vec<RosterChange>,
    nonce: u64,
    last_refusals: Vec<String>,
}

fn market_key() -> SigningKey {
    common::key(7, 0)
}
fn food_key() -> SigningKey {
    common::key(7, 1)
}

impl Ledger {
    fn new() -> Ledger {
        let extra = vec![
            common::member(
                "market",
                vec![Role::CreditAuthority("market".into())],
                &market_key(),
                None,
            ),
            common::member(
                "food",
                vec![Role::CreditAuthority("food".into())],
                &food_key(),
                None,
            ),
        ];
        let c = common::consortium_with(4, "xinlian-credit", Policy::default(), extra);
        let c = Consortium::new(c.genesis.clone());
        let tip = Tip::genesis(&c);
        Ledger {
            genesis: c.genesis.clone(),
            c,
            state: State::new(),
            tip,
            records: Vec::new(),
            heights: Vec::new(),
            changes: Vec::new(),
            nonce: 0,
            last_refusals: Vec::new(),
        }
    }

    fn sign(&mut self, key: &SigningKey, body: impl Into<Body>) -> EncodedRecord {
        self.nonce += 1;
        let env = Envelope {
            chain: self.c.chain,
            signer: public_key(key),
            nonce: self.nonce,
            body: body.into(),
        };
        EncodedRecord::new(env.sign(key))
    }

    /// The date of the next block.
    fn today(&self) -> Date {
        Date::of_ms_beijing(self.tip.time_ms + DAY_MS)
    }

    /// Builds, certifies and commits the next block, a day after the last; returns how
    /// many records it refused.
    fn block(&mut self, records: Vec<EncodedRecord>) -> usize {
        self.block_after(1, records)
    }

    /// As [`Ledger::block`], `days` after the last block.
    fn block_after(&mut self, days: i64, records: Vec<EncodedRecord>) -> usize {
        let height = self.tip.height + 1;
        // What the mempool does before a record reaches a block.
        let before = records.len();
        let records: Vec<EncodedRecord> = records
            .into_iter()
            .filter(|r| xinlian_client::checks::check_stateless(r, &self.c.chain).is_ok())
            .collect();
        let stateless = before - records.len();
        let proposer = self.c.validators.validators()[0].key;
        let (ex, rejected) = build_block(
            &self.state,
            &self.c,
            &self.tip,
            proposer,
            self.tip.time_ms + days * DAY_MS,
            &records,
        )
        .expect("map state never fails");
        self.last_refusals = rejected.iter().map(|(_, r)| r.to_string()).collect();
        let hash = ex.header.hash();
        let signatures = (0..4)
            .map(|i| CommitSignature {
                validator: i as u16,
                signature: Precommit {
                    chain: self.c.chain,
                    height,
                    round: 0,
                    block: hash,
                    validator: public_key(&common::node_key(i)),
                }
                .sign(&common::node_key(i)),
            })
            .collect();
        let certificate = Certificate {
            height,
            round: 0,
            block: hash,
            signatures,
        };
        common::apply(&mut self.state, ex.writes);
        self.records.extend(ex.records);
        self.tip = ex.tip;
        let cp = Checkpoint {
            header: ex.header.clone(),
            certificate,
        };
        self.heights.push((cp.clone(), self.state.clone()));
        if ex.header.next_roster_hash != self.c.roster_hash {
            self.c = consortium_at(&self.state, &self.genesis, height + 1).unwrap();
            self.changes.push(RosterChange {
                height: height + 1,
                roster: self.c.roster.clone(),
                announced_by: cp,
            });
        }
        stateless + rejected.len()
    }

    /// Commits `records` in one block; every one must be accepted.
    fn commit(&mut self, records: Vec<EncodedRecord>) {
        assert_eq!(
            self.block(records),
            0,
            "a record was refused: {:?}",
            self.last_refusals
        );
    }

    fn height(&self) -> u64 {
        self.tip.height
    }

    /// The answer a node gives at height `h` (as `proof_assembly::credit`).
    fn proof_at(&self, h: u64, u: &Uscc) -> CreditProof {
        let (checkpoint, state) = &self.heights[h as usize - 1];
        let size = checkpoint.header.ledger_size;
        let leaves: Vec<Hash32> = self.records[..size as usize]
            .iter()
            .map(|r| leaf_hash(r.bytes()))
            .collect();
        let prefix = key::credit_records_prefix(u);
        let records = state
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| {
                let index = u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap());
                LedgerEntry {
                    index,
                    record: HexBytes(self.records[index as usize].bytes().to_vec()),
                    inclusion: inclusion_proof(&Leaves(&leaves), index, size).unwrap(),
                }
            })
            .collect();
        CreditProof {
            checkpoint: checkpoint.clone(),
            uscc: u.clone(),
            state: state.get(&key::credit(u)).cloned().map(HexBytes),
            index_proof: smt::prove(
                &Committed(state, Index::Credit),
                &st::CreditState::index_key(u),
            )
            .unwrap(),
            records,
        }
    }

    fn proof(&self, u: &Uscc) -> CreditProof {
        self.proof_at(self.height(), u)
    }

    /// A fresh client that has followed every roster change.
    fn client(&self) -> LightClient {
        let mut lc = LightClient::new(self.genesis.clone());
        lc.accept_changes(&self.changes).unwrap();
        lc
    }

    fn verify(&self, u: &Uscc) -> VerifiedCredit {
        self.client()
            .verify_credit(u, &self.proof(u))
            .unwrap_or_else(|e| panic!("the honest answer must verify: {e}"))
    }

    fn value<T: serde::de::DeserializeOwned + serde::Serialize>(&self, k: &[u8]) -> Option<T> {
        self.state
            .get(k)
            .map(|b| canonical::decode(b, usize::MAX).unwrap())
    }
}

fn uscc(n: u32) -> Uscc {
    Uscc::with_check(&format!("91310000MA1K{n:05}")).unwrap()
}

/// An enterprise of the ledger, with its current key.
struct Firm {
    u: Uscc,
    key: SigningKey,
}

fn register(l: &mut Ledger, n: u32) -> Firm {
    let u = uscc(n);
    let key = common::key(9, n as usize);
    let reg = common::register(&l.c.chain, &u, &format!("Firm {n}"), &key);
    let r = l.sign(&common::registrar(), reg);
    l.commit(vec![r]);
    Firm { u, key }
}

fn commitment(l: &mut Ledger, f: &Firm, kind: CommitmentKind, agency: &str) -> EncodedRecord {
    let today = l.today();
    l.sign(
        &f.key,
        Commitment {
            subject: f.u.clone(),
            kind,
            matter: "food business licence".into(),
            legal_basis: "Food Safety Law art. 35".into(),
            template_version: "2026-1".into(),
            accepting_agency: agency.into(),
            domain: agency.into(),
            content: Content::Sealed(xinlian_genesis::Hash32([5; 32])),
            date: today,
            deadline: today.plus_days(90),
            disclosure: Disclosure::Public,
            publication_consent: true,
        },
    )
}

fn agency_key(agency: &str) -> SigningKey {
    if agency == "food" {
        food_key()
    } else {
        market_key()
    }
}

fn outcome(
    l: &mut Ledger,
    agency: &str,
    c: RecordId,
    verdict: Verdict,
    date: Date,
) -> EncodedRecord {
    l.sign(
        &agency_key(agency),
        Outcome {
            commitment: c,
            verdict,
            method: "on-site inspection".into(),
            evidence: None,
            document: "沪市监〔2026〕1号".into(),
            date,
        },
    )
}

fn list(
    l: &mut Ledger,
    f: &Firm,
    list: ListKind,
    action: ListAction,
    basis: Vec<RecordId>,
    date: Date,
) -> EncodedRecord {
    l.sign(
        &market_key(),
        ListMeasure {
            subject: f.u.clone(),
            list,
            action,
            domain: "market".into(),
            basis,
            reason: "test".into(),
            date,
        },
    )
}

fn repair(l: &mut Ledger, f: &Firm, outcome: RecordId) -> EncodedRecord {
    let today = l.today();
    l.sign(
        &f.key,
        RepairApplication {
            outcome,
            pledge: Content::Sealed(xinlian_genesis::Hash32([6; 32])),
            evidence: Vec::new(),
            date: today,
        },
    )
}

fn decide(l: &mut Ledger, agency: &str, application: RecordId, approved: bool) -> EncodedRecord {
    let today = l.today();
    l.sign(
        &agency_key(agency),
        RepairDecision {
            application,
            approved,
            reason: "test".into(),
            date: today,
        },
    )
}

/// A ledger with three enterprises: one clean with kept commitments, one with a
/// serious breach and a serious-dishonesty listing, one whose general breach was repaired.
struct Sample {
    l: Ledger,
    good: Firm,
    listed: Firm,
    repaired: Firm,
    serious_outcome: RecordId,
    serious_listing: RecordId,
}

fn sample() -> Sample {
    let mut l = Ledger::new();
    let (good, listed, repaired) = (
        register(&mut l, 1),
        register(&mut l, 2),
        register(&mut l, 3),
    );
    let mut rs = Vec::new();
    let mut cs = Vec::new();
    for f in [&good, &good, &good, &good, &listed, &repaired] {
        let r = commitment(&mut l, f, CommitmentKind::VoluntaryPublic, "market");
        cs.push(r.id());
        rs.push(r);
    }
    l.commit(rs);
    let today = l.today();
    let mut rs = Vec::new();
    for c in &cs[..4] {
        rs.push(outcome(&mut l, "market", *c, Verdict::Fulfilled, today));
    }
    let serious = outcome(
        &mut l,
        "market",
        cs[4],
        Verdict::Breached(Severity::Serious),
        today,
    );
    let serious_outcome = serious.id();
    rs.push(serious);
    // Determined 100 days ago: a general breach may be repaired after 90.
    let general = outcome(
        &mut l,
        "market",
        cs[5],
        Verdict::Breached(Severity::General),
        today.plus_days(0).minus(100),
    );
    let general_id = general.id();
    rs.push(general);
    l.commit(rs);
    let today = l.today();
    let listing = list(
        &mut l,
        &listed,
        ListKind::SeriousDishonesty,
        ListAction::Add,
        vec![serious_outcome],
        today,
    );
    let serious_listing = listing.id();
    let app = repair(&mut l, &repaired, general_id);
    let app_id = app.id();
    l.commit(vec![listing, app]);
    let d = decide(&mut l, "market", app_id, true);
    l.commit(vec![d]);
    Sample {
        l,
        good,
        listed,
        repaired,
        serious_outcome,
        serious_listing,
    }
}

trait Minus {
    fn minus(self, days: i32) -> Date;
}
impl Minus for Date {
    fn minus(self, days: i32) -> Date {
        Date(self.0 - days)
    }
}

#[test]
fn sample_enterprises_grade_differently_and_verify_complete() {
    let s = sample();
    let good = s.l.verify(&s.good.u);
    assert_eq!(good.grade.grade, Grade::A, "{:?}", good.grade);
    assert_eq!(good.grade.score, 80 + 12);
    assert_eq!(good.history.commitments.len(), 4);
    assert_eq!(good.history.profile.fulfilled, 4);

    let listed = s.l.verify(&s.listed.u);
    assert_eq!(listed.grade.grade, Grade::D, "{:?}", listed.grade);
    assert!(
        listed
            .grade
            .caps
            .iter()
            .any(|c| c.rule == "serious_list_cap" && c.record == Some(s.serious_listing)),
        "the listing caps the grade: {:?}",
        listed.grade.caps
    );
    assert!(listed.history.profile.on_serious_dishonesty_list);

    let repaired = s.l.verify(&s.repaired.u);
    // -20 kept at 25 %: -5.
    assert_eq!(repaired.grade.score, 75);
    assert_eq!(repaired.grade.grade, Grade::B, "{:?}", repaired.grade);
    assert_eq!(repaired.history.profile.repaired, 1);
    // Before the repair decision the same enterprise was C.
    let before =
        s.l.client()
            .verify_credit(
                &s.repaired.u,
                &s.l.proof_at(s.l.height() - 1, &s.repaired.u),
            )
            .unwrap();
    assert_eq!((before.grade.grade, before.grade.score), (Grade::C, 60));
}

/// Asserts that `e` matches the pattern, showing the error's message if not.
macro_rules! expect {
    ($e:expr, $p:pat $(if $g:expr)?) => {
        let e = $e;
        assert!(matches!(e, $p $(if $g)?), "{e}")
    };
}

fn refused(l: &Ledger, u: &Uscc, p: &CreditProof) -> CreditError {
    l.client()
        .verify_credit(u, p)
        .expect_err("a tampered answer must not verify")
}

#[test]
fn dropped_reordered_altered_or_stale_answers_are_refused_by_name() {
    let s = sample();
    let (l, u) = (&s.l, &s.listed.u);
    let honest = l.proof(u);
    assert!(honest.records.len() >= 4);

    // Dropping the serious breach: the count no longer matches.
    let mut p = honest.clone();
    let i = p
        .records
        .iter()
        .position(|e| {
            EncodedRecord::decode(&e.record.0, usize::MAX).unwrap().id() == s.serious_outcome
        })
        .unwrap();
    p.records.remove(i);
    expect!(refused(l, u, &p), CreditError::Count { given, proven } if given + 1 == proven as usize);

    // Dropping it and the state's count with it: the state is then not the one indexed.
    let mut state: st::CreditState =
        canonical::decode(&honest.state.as_ref().unwrap().0, 1024).unwrap();
    state.records -= 1;
    p.state = Some(HexBytes(canonical::encode(&state)));
    expect!(refused(l, u, &p), CreditError::NotInIndex { .. });

    // Reordering two records.
    let mut p = honest.clone();
    p.records.swap(1, 2);
    expect!(refused(l, u, &p), CreditError::Order { .. });

    // Substituting another record of the ledger at its place (its inclusion holds).
    let mut p = honest.clone();
    let other = l.proof(&s.good.u).records[1].clone();
    let last = p.records.len() - 1;
    p.records[last] = other;
    let e = refused(l, u, &p);
    assert!(
        matches!(e, CreditError::Chain | CreditError::Order { .. }),
        "{e}"
    );

    // Altering a record's bytes: its inclusion fails.
    let mut p = honest.clone();
    let b = &mut p.records[2].record.0;
    let n = b.len();
    b[n - 70] ^= 1;
    let e = refused(l, u, &p);
    assert!(matches!(e, CreditError::Verify(_)), "{e}");

    // An older certified state under the newest header.
    let old = l.proof_at(l.height() - 2, u);
    let mut p = honest.clone();
    p.state = old.state.clone();
    p.records = old.records.clone();
    expect!(refused(l, u, &p), CreditError::NotInIndex { .. });

    // An older answer whole, to a client that knows a newer header.
    let mut lc = l.client();
    lc.advance(honest.checkpoint.clone(), None).unwrap();
    expect!(
        lc.verify_credit(u, &old).unwrap_err(),
        CreditError::Stale { .. }
    );

    // Another enterprise's state and records for this USCC.
    let mut p = l.proof(&s.good.u);
    p.uscc = u.clone();
    expect!(refused(l, u, &p), CreditError::WrongEnterprise { .. });

    // The honest answer still verifies.
    l.client().verify_credit(u, &honest).unwrap();
}

#[test]
fn absence_claims_hold_only_without_a_refuting_record() {
    let s = sample();
    let l = &s.l;
    // The newest header's date: what the answers speak for.
    let today = l.today().minus(1);
    // Not registered: proven absent for an unknown USCC.
    let nobody = uscc(99);
    expect!(
        l.client()
            .verify_credit(&nobody, &l.proof(&nobody))
            .unwrap_err(),
        CreditError::NotRegistered { .. }
    );
    // Claimed absent when registered: the index proves it present.
    let mut p = l.proof(&s.listed.u);
    p.state = None;
    p.records.clear();
    expect!(refused(l, &s.listed.u, &p), CreditError::NotAbsent { .. });
    // With the absence proof of another key, too.
    let mut p = l.proof(&nobody);
    p.uscc = s.listed.u.clone();
    expect!(refused(l, &s.listed.u, &p), CreditError::NotAbsent { .. });

    // No serious breach: true for the clean enterprise, refuted for the listed one.
    let good = l.verify(&s.good.u);
    assert_eq!(good.grade.as_of, today);
    good.no_serious_breach_between(today.minus(365), today)
        .unwrap();
    good.not_seriously_listed_on(today).unwrap();
    let listed = l.verify(&s.listed.u);
    expect!(
        listed.no_serious_breach_between(today.minus(365), today).unwrap_err(),
        CreditError::Claim { record, .. } if record == s.serious_outcome
    );
    // Outside the interval the claim holds.
    listed
        .no_serious_breach_between(today.minus(900), today.minus(400))
        .unwrap();
    expect!(
        listed.not_seriously_listed_on(today).unwrap_err(),
        CreditError::Claim { record, .. } if record == s.serious_listing
    );
    // The day before the listing took effect it was not in force.
    listed.not_seriously_listed_on(today.minus(2)).unwrap();
    // Nothing is claimed past the header's date, however clean the record.
    expect!(
        good.not_seriously_listed_on(today.plus_days(1))
            .unwrap_err(),
        CreditError::BeyondHeader { .. }
    );
    expect!(
        good.no_serious_breach_between(today, today.plus_days(30))
            .unwrap_err(),
        CreditError::BeyondHeader { .. }
    );
    // Hiding the breach to make the claim: refused before any claim is made.
    let mut p = l.proof(&s.listed.u);
    p.records.retain(|e| {
        EncodedRecord::decode(&e.record.0, usize::MAX).unwrap().id() != s.serious_outcome
    });
    expect!(refused(l, &s.listed.u, &p), CreditError::Count { .. });
}

#[test]
fn a_report_verifies_offline_and_names_its_rules() {
    let s = sample();
    let r = CreditReport {
        format: CREDIT_REPORT_FORMAT.into(),
        chain: s.l.c.chain,
        roster_changes: s.l.changes.clone(),
        proof: s.l.proof(&s.repaired.u),
    };
    let json = serde_json::to_string(&r).unwrap();
    let back: CreditReport = serde_json::from_str(&json).unwrap();
    let v = LightClient::verify_credit_report(s.l.genesis.clone(), &back).unwrap();
    assert_eq!(v.grade.rules_version, 1);
    assert_eq!(v.history.uscc, s.repaired.u);
    let mut bad = back.clone();
    bad.format = "xinlian-credit/v0".into();
    expect!(
        LightClient::verify_credit_report(s.l.genesis.clone(), &bad).unwrap_err(),
        CreditError::Format(_)
    );
}

#[test]
fn a_rules_change_by_governance_applies_from_its_height_and_old_grades_stay_reproducible() {
    let mut s = sample();
    let l = &mut s.l;
    let u = s.repaired.u.clone();
    // Version 2: repairs keep half a breach's points.
    let mut policy = l.c.policy().clone();
    policy.grading.repaired_percent = 50;
    // The same rules under a new version are refused, as is a change without one.
    let effective = l.height() + 6;
    let change = Change::SetPolicy(policy.clone());
    let propose = |l: &mut Ledger, change: Change| {
        let rec = l.sign(
            &common::key(3, 0),
            Proposal {
                change,
                reason: "grading v2".into(),
                deadline: effective - 2,
                effective,
                possession: Vec::new(),
            },
        );
        let id = rec.id();
        (rec, id)
    };
    let (rec, _) = propose(l, change);
    assert_eq!(
        l.block(vec![rec]),
        1,
        "a changed grading with the same version is refused"
    );
    assert!(
        l.last_refusals[0].contains("does not rise"),
        "{:?}",
        l.last_refusals
    );
    let mut same = l.c.policy().clone();
    same.grading.version = 2;
    let (rec, _) = propose(l, Change::SetPolicy(same));
    assert_eq!(
        l.block(vec![rec]),
        1,
        "the same rules under a new version are refused"
    );
    assert!(
        l.last_refusals[0].contains("unchanged"),
        "{:?}",
        l.last_refusals
    );
    policy.grading.version = 2;
    let (rec, id) = propose(l, Change::SetPolicy(policy.clone()));
    // The proposer's record counts as its approval: two more pass it.
    let votes: Vec<EncodedRecord> = (1..3)
        .map(|i| {
            l.sign(
                &common::key(3, i),
                Vote {
                    proposal: id,
                    approve: true,
                },
            )
        })
        .collect();
    l.commit(vec![rec]);
    l.commit(votes);
    while l.height() < effective - 1 {
        l.commit(Vec::new());
    }
    let before = l.verify(&u);
    assert_eq!((before.grade.rules_version, before.grade.score), (1, 75));
    l.commit(Vec::new());
    let after = l.verify(&u);
    assert_eq!(after.height, effective);
    assert_eq!((after.grade.rules_version, after.grade.score), (2, 70));
    // The older answer, checked again, still grades under version 1.
    let old = l
        .client()
        .verify_credit(&u, &l.proof_at(effective - 1, &u))
        .unwrap();
    assert_eq!(old.grade, before.grade);
}

/// Passes `policy` by a vote of three validators, effective a few blocks on; returns
/// the height it takes effect at, once reached.
fn pass_policy(l: &mut Ledger, policy: Policy) -> u64 {
    let effective = l.height() + 4;
    let rec = l.sign(
        &common::key(3, 0),
        Proposal {
            change: Change::SetPolicy(policy),
            reason: "rules change".into(),
            deadline: effective - 2,
            effective,
            possession: Vec::new(),
        },
    );
    let id = rec.id();
    l.commit(vec![rec]);
    let votes = (1..3)
        .map(|i| {
            l.sign(
                &common::key(3, i),
                Vote {
                    proposal: id,
                    approve: true,
                },
            )
        })
        .collect();
    l.commit(votes);
    while l.height() < effective {
        l.commit(Vec::new());
    }
    effective
}

#[test]
fn a_listing_keeps_the_period_of_the_rules_it_was_recorded_under() {
    let mut s = sample();
    let l = &mut s.l;
    let u = s.listed.u.clone();
    let before = l.verify(&u);
    let until = before.history.listings[0].until;
    // The rules shorten the serious-dishonesty period to 10 days.
    let mut policy = l.c.policy().clone();
    policy.grading.serious_list_days = 10;
    policy.grading.version = 2;
    pass_policy(l, policy);
    l.block_after(30, Vec::new());
    let after = l.verify(&u);
    assert_eq!(after.grade.rules_version, 2);
    assert_eq!(
        after.history.listings[0].until, until,
        "the lapse date did not move"
    );
    assert_eq!(after.history.profile.serious_list_until, Some(until));
    assert!(
        after
            .grade
            .caps
            .iter()
            .any(|c| c.rule == "serious_list_cap"),
        "{:?}",
        after.grade
    );
    expect!(
        after
            .not_seriously_listed_on(after.grade.as_of)
            .unwrap_err(),
        CreditError::Claim { .. }
    );
    // The node agrees: the notification route stays barred.
    let c = commitment(l, &s.listed, CommitmentKind::ApprovalSubstitute, "market");
    assert_eq!(l.block(vec![c]), 1);
    assert!(
        l.last_refusals[0].contains("serious"),
        "{:?}",
        l.last_refusals
    );
    // A profile claiming another lapse date is refused (it is committed).
    let mut p = l.proof(&u);
    let mut state: st::CreditState = canonical::decode(&p.state.as_ref().unwrap().0, 1024).unwrap();
    state.profile.serious_list_until = Some(after.grade.as_of);
    p.state = Some(HexBytes(canonical::encode(&state)));
    expect!(refused(l, &u, &p), CreditError::NotInIndex { .. });
}

/// What the generator may do next.
#[derive(Clone, Debug)]
enum Op {
    Commit {
        firm: usize,
        food: bool,
        notification: bool,
    },
    Decide {
        pick: usize,
        verdict: u8,
        back_days: u16,
    },
    List {
        firm: usize,
        serious: bool,
        back_days: u16,
    },
    Unlist {
        firm: usize,
        serious: bool,
    },
    Repair {
        pick: usize,
    },
    Judge {
        pick: usize,
        approve: bool,
    },
    Rotate {
        firm: usize,
    },
    /// The registrar revokes the enterprise's key, or (`rebind`) binds a new one.
    Registrar {
        firm: usize,
        rebind: bool,
    },
    Idle {
        days: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize, any::<bool>(), any::<bool>()).prop_map(|(firm, food, notification)| Op::Commit { firm, food, notification }),
        3 => (any::<usize>(), 0..4u8, 0..1500u16).prop_map(|(pick, verdict, back_days)| Op::Decide { pick, verdict, back_days }),
        1 => (0..2usize, any::<bool>(), 0..1200u16).prop_map(|(firm, serious, back_days)| Op::List { firm, serious, back_days }),
        1 => (0..2usize, any::<bool>()).prop_map(|(firm, serious)| Op::Unlist { firm, serious }),
        2 => any::<usize>().prop_map(|pick| Op::Repair { pick }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, approve)| Op::Judge { pick, approve }),
        1 => (0..2usize).prop_map(|firm| Op::Rotate { firm }),
        1 => (0..2usize, any::<bool>()).prop_map(|(firm, rebind)| Op::Registrar { firm, rebind }),
        1 => (1..400u16).prop_map(|days| Op::Idle { days }),
    ]
}

/// An independent reading of the grade from the node's own derived state (commitment
/// states, the list entries in force, the repair decisions' dates) under the default
/// rules: what the client's replay of the records must agree with.
fn reference_grade(l: &Ledger, u: &Uscc, day: Date) -> (Grade, i64) {
    let r = Grading::default();
    let mut score = r.base as i64;
    let mut fulfilled = 0i64;
    let mut cap = Grade::A;
    let prefix = key::credit_records_prefix(u);
    for (_, v) in l
        .state
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
    {
        let id: RecordId = canonical::decode(v, 64).unwrap();
        let Some(c) = l.value::<st::CommitmentState>(&key::commitment(&id)) else {
            continue;
        };
        let Some(d) = c.outcome_date else { continue };
        let window = |days: u32| d <= day && day < d.plus_days(days);
        let (sev, repaired) = match c.status {
            st::CommitmentStatus::Fulfilled if window(r.fulfilled.window_days) => {
                fulfilled += r.fulfilled.points as i64;
                continue;
            }
            st::CommitmentStatus::Breached(s) => (s, false),
            st::CommitmentStatus::Repaired(s) => (s, true),
            _ => continue,
        };
        let w = match sev {
            Severity::Minor => &r.breach_minor,
            Severity::General => &r.breach_general,
            Severity::Serious => &r.breach_serious,
        };
        if !window(w.window_days) {
            continue;
        }
        let mut p = w.points as i64 * r.domain_percent(&c.domain) as i64 / 100;
        if repaired {
            p = p * r.repaired_percent as i64 / 100;
        } else if sev == Severity::Serious {
            cap = cap.max(r.serious_breach_cap);
        }
        score += p;
    }
    score += fulfilled.min(r.fulfilled_cap as i64);
    for (list, days) in [
        (ListKind::Reward, r.reward_list_days),
        (ListKind::SeriousDishonesty, r.serious_list_days),
    ] {
        if let Some(e) = l.value::<st::ListEntry>(&key::list(list, u))
            && e.date <= day
            && day < e.date.plus_days(days)
        {
            match list {
                ListKind::Reward => score += r.reward_list_points as i64,
                ListKind::SeriousDishonesty => cap = cap.max(r.serious_list_cap),
            }
        }
    }
    (r.grade_of(score).max(cap), score)
}

fn run_history(ops: Vec<Op>) {
    let mut l = Ledger::new();
    let mut firms = vec![register(&mut l, 11), register(&mut l, 12)];
    let mut commitments: Vec<(usize, RecordId, &'static str)> = Vec::new();
    let mut outcomes: Vec<(usize, RecordId, &'static str)> = Vec::new();
    let mut applications: Vec<(RecordId, &'static str)> = Vec::new();
    let mut rotations = 0usize;
    for op in ops {
        let today = l.today();
        let rec = match op {
            Op::Commit {
                firm,
                food,
                notification,
            } => {
                let agency = if food { "food" } else { "market" };
                let kind = if notification {
                    CommitmentKind::ApprovalSubstitute
                } else {
                    CommitmentKind::VoluntaryPublic
                };
                let r = commitment(&mut l, &firms[firm], kind, agency);
                commitments.push((firm, r.id(), agency));
                Some(r)
            }
            Op::Decide {
                pick,
                verdict,
                back_days,
            } if !commitments.is_empty() => {
                let (firm, c, agency) = commitments[pick % commitments.len()];
                let verdict = match verdict {
                    0 => Verdict::Fulfilled,
                    1 => Verdict::Breached(Severity::Minor),
                    2 => Verdict::Breached(Severity::General),
                    _ => Verdict::Breached(Severity::Serious),
                };
                let r = outcome(&mut l, agency, c, verdict, today.minus(back_days as i32));
                outcomes.push((firm, r.id(), agency));
                Some(r)
            }
            Op::List {
                firm,
                serious,
                back_days,
            } => {
                let basis: Vec<RecordId> = outcomes
                    .iter()
                    .filter(|o| o.0 == firm)
                    .map(|o| o.1)
                    .take(32)
                    .collect();
                let kind = if serious {
                    ListKind::SeriousDishonesty
                } else {
                    ListKind::Reward
                };
                Some(list(
                    &mut l,
                    &firms[firm],
                    kind,
                    ListAction::Add,
                    basis,
                    today.minus(back_days as i32),
                ))
            }
            Op::Unlist { firm, serious } => {
                let kind = if serious {
                    ListKind::SeriousDishonesty
                } else {
                    ListKind::Reward
                };
                let basis: Vec<RecordId> = outcomes
                    .iter()
                    .filter(|o| o.0 == firm)
                    .map(|o| o.1)
                    .take(32)
                    .collect();
                Some(list(
                    &mut l,
                    &firms[firm],
                    kind,
                    ListAction::Remove,
                    basis,
                    today.minus(1),
                ))
            }
            Op::Repair { pick } if !outcomes.is_empty() => {
                let (firm, o, agency) = outcomes[pick % outcomes.len()];
                let r = repair(&mut l, &firms[firm], o);
                applications.push((r.id(), agency));
                Some(r)
            }
            Op::Judge { pick, approve } if !applications.is_empty() => {
                let (a, agency) = applications[pick % applications.len()];
                Some(decide(&mut l, agency, a, approve))
            }
            Op::Rotate { firm } => {
                rotations += 1;
                let key = common::key(10, rotations);
                let body = common::rotate(&l.c.chain, &firms[firm].u, &key);
                let r = l.sign(&firms[firm].key.clone(), body);
                if l.block(vec![r]) == 0 {
                    firms[firm].key = key;
                }
                None
            }
            Op::Registrar { firm, rebind } => {
                // With the key revoked, the enterprise's own records are refused until
                // the registrar binds a new one.
                let body: Body = if rebind {
                    rotations += 1;
                    common::rotate(&l.c.chain, &firms[firm].u, &common::key(10, rotations)).into()
                } else {
                    RevokeEntityKey {
                        uscc: firms[firm].u.clone(),
                        reason: "key compromised".into(),
                    }
                    .into()
                };
                let r = l.sign(&common::registrar(), body);
                if l.block(vec![r]) == 0 && rebind {
                    firms[firm].key = common::key(10, rotations);
                }
                None
            }
            Op::Idle { days } => {
                l.block_after(days as i64, Vec::new());
                None
            }
            _ => None,
        };
        if let Some(r) = rec {
            // Refusals (an outcome of a decided commitment, a repair too early…)
            // are the node's to make; the property holds over what it accepted.
            l.block(vec![r]);
        }
    }
    let day = Date::of_ms_beijing(l.tip.time_ms);
    for f in &firms {
        let v = l.verify(&f.u);
        let node: st::CreditState = l.value(&key::credit(&f.u)).unwrap();
        assert_eq!(v.history.profile, node.profile, "profiles");
        for c in &v.history.commitments {
            let n: st::CommitmentState = l.value(&key::commitment(&c.at.id)).unwrap();
            assert_eq!(c.status, n.status, "status of {}", c.at.id);
        }
        assert_eq!(v.grade.as_of, day);
        assert_eq!(
            (v.grade.grade, v.grade.score),
            reference_grade(&l, &f.u, day),
            "{:#?}",
            v.grade
        );
        // And the node's way of grading (the same function over the same history).
        assert_eq!(grade(&v.history, &Grading::default(), day), v.grade);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    #[test]
    fn the_clients_replay_matches_the_nodes_state_and_grade(ops in prop::collection::vec(op(), 1..60)) {
        run_history(ops);
    }
}
