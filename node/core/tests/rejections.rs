//! One test per rejection reason: each asserts the specific error and that the state
//! is exactly as before. Execution is pure, so these run in memory, through the same
//! `execute_record` the mempool and block execution use.

mod common;

use common::member;

use std::collections::BTreeMap;

use xinlian_client::checks::StatelessError;
use xinlian_client::ids::Uscc;
use xinlian_client::record::*;
use xinlian_client::signer::RecordSigner;
use xinlian_client::state::{self as st, key};
use xinlian_client::when::{Date, EventTime};
use xinlian_core::execute::{BlockContext, Consortium, ExecError, Rejection, execute_record};
use xinlian_core::overlay::Overlay;
use xinlian_genesis::Role;
use xinlian_genesis::keys::{self, SigningKey, public_key};

struct World {
    c: Consortium,
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    height: u64,
    next_index: u64,
    registrar: RecordSigner,
    market: RecordSigner,
    drug: RecordSigner,
}

const DAY_MS: i64 = 86_400_000;
/// 2026-11-29 00:00 Beijing time.
const NOW_MS: i64 = 1_795_881_600_000 - 8 * 3_600_000;

impl World {
    fn new() -> World {
        World::with_trace(xinlian_genesis::TracePolicy::default())
    }

    fn with_trace(trace: xinlian_genesis::TracePolicy) -> World {
        let k = || keys::generate().unwrap();
        let (v, vn, reg, mkt, drg) = (k(), k(), k(), k(), k());
        let mut genesis = common::genesis_with(
            "test",
            (&v, &vn, &reg),
            vec![
                member(
                    "market",
                    vec![
                        Role::CreditAuthority("market".into()),
                        Role::TraceAuthority("food".into()),
                    ],
                    &mkt,
                    None,
                ),
                member(
                    "drug",
                    vec![
                        Role::CreditAuthority("drug".into()),
                        Role::TraceAuthority("drug".into()),
                    ],
                    &drg,
                    None,
                ),
            ],
        );
        genesis.policy.trace = trace;
        let c = Consortium::new(genesis);
        let chain = c.chain;
        let s = |key| RecordSigner { key, chain };
        World {
            c,
            state: BTreeMap::new(),
            height: 1,
            next_index: 0,
            registrar: s(reg),
            market: s(mkt),
            drug: s(drg),
        }
    }

    fn signer(&self, key: SigningKey) -> RecordSigner {
        RecordSigner {
            key,
            chain: self.c.chain,
        }
    }

    fn ctx(&self, days_from_now: i64) -> BlockContext {
        BlockContext {
            height: self.height,
            time_ms: NOW_MS + days_from_now * DAY_MS,
        }
    }

    fn try_at(&mut self, days: i64, rec: &SignedRecord) -> Result<(), Rejection> {
        let rec = &EncodedRecord::new(rec.clone());
        xinlian_client::checks::check_stateless(rec, &self.c.chain).map_err(Rejection::from)?;
        let ctx = self.ctx(days);
        let mut o = Overlay::new(&self.state);
        let out = execute_record(&mut o, &self.c, &ctx, rec, self.next_index);
        let writes = o.into_writes();
        match out {
            Ok(()) => {
                common::apply(&mut self.state, writes);
                self.next_index += 1;
                self.height += 1;
                Ok(())
            }
            Err(ExecError::Rejected(r)) => {
                assert!(
                    writes.is_empty(),
                    "a rejected record left writes behind: {r}"
                );
                Err(r)
            }
            Err(ExecError::State(e)) => panic!("state error {e}"),
        }
    }

    fn ok(&mut self, rec: SignedRecord) -> RecordId {
        let id = rec.id();
        self.try_at(0, &rec)
            .unwrap_or_else(|e| panic!("expected acceptance: {e}"));
        id
    }

    /// Asserts a rejection and that state is byte-for-byte unchanged.
    fn refuse_at(&mut self, days: i64, rec: SignedRecord) -> Rejection {
        let before = self.state.clone();
        let r = self.try_at(days, &rec).expect_err("expected a rejection");
        assert_eq!(
            before, self.state,
            "state changed by a rejected record ({r})"
        );
        r
    }

    fn refuse(&mut self, rec: SignedRecord) -> Rejection {
        self.refuse_at(0, rec)
    }

    fn enterprise(&mut self, payload: &str) -> (Uscc, RecordSigner) {
        let u = Uscc::with_check(payload).unwrap();
        let key = keys::generate().unwrap();
        let rec = self
            .registrar
            .sign(common::register(&self.c.chain, &u, payload, &key));
        self.ok(rec);
        (u, self.signer(key))
    }

    fn get<T: serde::Serialize + serde::de::DeserializeOwned>(&self, k: &[u8]) -> Option<T> {
        self.state
            .get(k)
            .map(|v| xinlian_genesis::canonical::decode(v, usize::MAX).unwrap())
    }
}

fn commitment(u: &Uscc, kind: CommitmentKind, agency: &str, domain: &str) -> Commitment {
    Commitment {
        subject: u.clone(),
        kind,
        matter: "licence".into(),
        legal_basis: "art. 31".into(),
        template_version: "v1".into(),
        accepting_agency: agency.into(),
        domain: domain.into(),
        content: Content::Sealed(xinlian_genesis::Hash32([5; 32])),
        date: Date::parse("2026-01-01").unwrap(),
        deadline: Date::parse("2026-06-01").unwrap(),
        disclosure: Disclosure::Public,
        publication_consent: true,
    }
}

fn outcome(c: RecordId, verdict: Verdict, date: &str) -> Outcome {
    Outcome {
        commitment: c,
        verdict,
        method: "review".into(),
        evidence: None,
        document: "doc-1".into(),
        date: Date::parse(date).unwrap(),
    }
}

fn t() -> EventTime {
    EventTime {
        unix_ms: NOW_MS,
        offset_minutes: 480,
    }
}

fn kg(amount: u64) -> Quantity {
    Quantity {
        amount: amount.into(),
        uom: "KGM".into(),
    }
}

fn commission(batch: &str, amount: u64) -> Commission {
    Commission {
        batch: batch.into(),
        domain: "food".into(),
        product: Product {
            name: "rice".into(),
            gtin: None,
            drug_code: None,
        },
        lot: "L1".into(),
        quantity: kg(amount),
        origin: "farm".into(),
        time: t(),
    }
}

fn ship(batch: &str, amount: u64, to: &Uscc) -> Ship {
    Ship {
        batch: batch.into(),
        quantity: kg(amount),
        to: to.clone().into(),
        from_location: "a".into(),
        to_location: "b".into(),
        time: t(),
    }
}

#[test]
fn wrong_chain() {
    let mut w = World::new();
    let other = RecordSigner {
        key: w.registrar.key.clone(),
        chain: xinlian_genesis::Hash32([7; 32]),
    };
    let u = Uscc::with_check("91310000MA1FL8TQ3").unwrap();
    let r = w.refuse(other.sign(common::register(
        &other.chain,
        &u,
        "x",
        &keys::generate().unwrap(),
    )));
    assert!(
        matches!(r, Rejection::Stateless(StatelessError::WrongChain { .. })),
        "{r}"
    );
    assert_eq!(r.code(), "wrong_chain");
}

#[test]
fn bad_signature() {
    let mut w = World::new();
    let u = Uscc::with_check("91310000MA1FL8TQ3").unwrap();
    let mut rec = w.registrar.sign(common::register(
        &w.c.chain,
        &u,
        "x",
        &keys::generate().unwrap(),
    ));
    rec.signature.0[10] ^= 1;
    let r = w.refuse(rec);
    assert_eq!(r.code(), "bad_signature", "{r}");
}

#[test]
fn bad_identifiers_and_fields() {
    let mut w = World::new();
    let key = keys::generate().unwrap();
    let mut reg = common::register(&w.c.chain, &Uscc("91310000MA1FL8TQ3X".into()), "x", &key);
    let r = w.refuse(w.registrar.sign(reg.clone()));
    assert!(r.to_string().contains("should be '6'"), "{r}");
    assert_eq!(r.code(), "invalid_identifier");
    // A recorded override accepts a genuine code that fails the check.
    reg.check_override = Some("pilot-era code, verified on paper".into());
    w.ok(w.registrar.sign(reg));
    let (_, farm) = w.enterprise("91310117MA1G0A1B2");
    let mut c = commission("b1", 10);
    c.product.gtin = Some("4006381333932".into());
    let r = w.refuse(farm.sign(c));
    assert!(
        r.to_string().contains("product.gtin") && r.to_string().contains("should be 1"),
        "{r}"
    );
    let r = w.refuse(farm.sign(commission("b 1", 10)));
    assert!(r.to_string().starts_with("batch:"), "{r}");
    let mut c = commission("b1", 10);
    c.quantity.amount = 0.into();
    assert!(
        w.refuse(farm.sign(c))
            .to_string()
            .contains("amount must be positive")
    );
}

#[test]
fn unknown_signer_and_unauthorised_signer() {
    let mut w = World::new();
    let stranger = w.signer(keys::generate().unwrap());
    let u = Uscc::with_check("91310000MA1FL8TQ3").unwrap();
    let reg = common::register(&w.c.chain, &u, "x", &keys::generate().unwrap());
    assert!(matches!(
        w.refuse(stranger.sign(reg.clone())),
        Rejection::UnknownSigner(_)
    ));
    let r = w.refuse(w.market.sign(reg));
    assert!(
        matches!(&r, Rejection::Unauthorised { reason, .. } if reason.contains("not a registrar")),
        "{r}"
    );
    let (a, a_key) = w.enterprise("91310115MA1H0C3D4");
    let (_, b_key) = w.enterprise("91310104MA1J0E5F6");
    // An enterprise cannot commit on another's behalf.
    let r = w.refuse(b_key.sign(commitment(
        &a,
        CommitmentKind::VoluntaryPublic,
        "market",
        "market",
    )));
    assert!(
        matches!(
            &r,
            Rejection::Unauthorised {
                kind: "commitment",
                ..
            }
        ),
        "{r}"
    );
    // The accepting agency must be a credit authority for the domain.
    let r = w.refuse(a_key.sign(commitment(
        &a,
        CommitmentKind::VoluntaryPublic,
        "drug",
        "market",
    )));
    assert!(
        r.to_string()
            .contains("not a credit authority for domain 'market'"),
        "{r}"
    );
}

#[test]
fn only_the_accepting_agency_records_an_outcome_and_only_once() {
    let mut w = World::new();
    let (u, k) = w.enterprise("91310115MA1H0C3D4");
    let c = w.ok(k.sign(commitment(
        &u,
        CommitmentKind::ApprovalSubstitute,
        "market",
        "market",
    )));
    let r = w.refuse(w.drug.sign(outcome(c, Verdict::Fulfilled, "2026-07-01")));
    assert!(
        r.to_string().contains("only the accepting agency 'market'"),
        "{r}"
    );
    let r = w.refuse(
        w.market
            .sign(outcome(RecordId([9; 32]), Verdict::Fulfilled, "2026-07-01")),
    );
    assert!(
        matches!(
            r,
            Rejection::NotFound {
                what: "commitment",
                ..
            }
        ),
        "{r}"
    );
    let r = w.refuse(w.market.sign(outcome(c, Verdict::Fulfilled, "2027-07-01")));
    assert!(matches!(r, Rejection::FutureDate { .. }), "{r}");
    w.ok(w.market.sign(outcome(c, Verdict::Fulfilled, "2026-07-01")));
    let r = w.refuse(w.market.sign(outcome(
        c,
        Verdict::Breached(Severity::General),
        "2026-07-02",
    )));
    assert!(
        matches!(
            &r,
            Rejection::WrongState {
                what: "commitment",
                ..
            }
        ),
        "{r}"
    );
    let cs: st::CommitmentState = w.get(&key::commitment(&c)).unwrap();
    assert_eq!(cs.status, st::CommitmentStatus::Fulfilled);
}

#[test]
fn repair_needs_a_breach_the_minimum_period_and_the_determining_agency() {
    let mut w = World::new();
    let (u, k) = w.enterprise("91310104MA1J0E5F6");
    let c1 = w.ok(k.sign(commitment(
        &u,
        CommitmentKind::ApprovalSubstitute,
        "market",
        "market",
    )));
    let fulfilled = w.ok(w.market.sign(outcome(c1, Verdict::Fulfilled, "2026-07-01")));
    let pledge = |o| RepairApplication {
        outcome: o,
        pledge: Content::Sealed(xinlian_genesis::Hash32([6; 32])),
        evidence: vec![],
        date: Date::parse("2026-11-28").unwrap(),
    };
    let r = w.refuse(k.sign(pledge(fulfilled)));
    assert!(
        r.to_string().contains("only a breach can be repaired"),
        "{r}"
    );
    let c2 = w.ok(k.sign(commitment(
        &u,
        CommitmentKind::IndustrySelfDiscipline,
        "market",
        "market",
    )));
    // General breach determined 2026-10-01: repair allowed from 90 days later.
    let breach = w.ok(w.market.sign(outcome(
        c2,
        Verdict::Breached(Severity::General),
        "2026-10-01",
    )));
    let r = w.refuse(k.sign(pledge(breach)));
    assert!(
        matches!(&r, Rejection::TooEarly { earliest, .. } if earliest.to_string() == "2026-12-30"),
        "{r}"
    );
    let app = k.sign(pledge(breach));
    let app_id = app.id();
    w.try_at(40, &app).unwrap();
    let r = w.refuse_at(41, k.sign(pledge(breach)));
    assert!(r.to_string().contains("still open"), "{r}");
    let decision = RepairDecision {
        application: app_id,
        approved: true,
        reason: "rectified".into(),
        // Not after the block's date (a decision is not dated ahead).
        date: Date::parse("2026-12-30").unwrap(),
    };
    let r = w.refuse_at(41, w.drug.sign(decision.clone()));
    assert!(
        r.to_string()
            .contains("accepting agency 'market' decides this repair"),
        "{r}"
    );
    w.try_at(41, &w.market.sign(decision)).unwrap();
    let cs: st::CommitmentState = w.get(&key::commitment(&c2)).unwrap();
    assert_eq!(cs.status, st::CommitmentStatus::Repaired(Severity::General));
    let p = w.get::<st::CreditState>(&key::credit(&u)).unwrap().profile;
    assert_eq!((p.breached_general, p.repaired, p.fulfilled), (0, 1, 1));
}

#[test]
fn serious_breach_bars_notification_commitments_until_repaired() {
    let mut w = World::new();
    let (u, k) = w.enterprise("91310115MA1H0C3D4");
    let c = w.ok(k.sign(commitment(
        &u,
        CommitmentKind::ApprovalSubstitute,
        "market",
        "market",
    )));
    let o = w.ok(w.market.sign(outcome(
        c,
        Verdict::Breached(Severity::Serious),
        "2026-11-01",
    )));
    let r = w.refuse(k.sign(commitment(
        &u,
        CommitmentKind::ApprovalSubstitute,
        "market",
        "market",
    )));
    assert!(
        matches!(&r, Rejection::NotEligible { reason, .. } if reason.contains("serious breach")),
        "{r}"
    );
    // Other kinds stay open to it.
    w.ok(k.sign(commitment(
        &u,
        CommitmentKind::VoluntaryPublic,
        "market",
        "market",
    )));
    // The serious list needs a serious breach in its basis, about this subject.
    let list = |basis| ListMeasure {
        subject: u.clone(),
        list: ListKind::SeriousDishonesty,
        action: ListAction::Add,
        domain: "market".into(),
        basis,
        reason: "false commitment".into(),
        date: Date::parse("2026-11-02").unwrap(),
    };
    w.ok(w.market.sign(list(vec![o])));
    let r = w.refuse(w.market.sign(list(vec![o])));
    assert!(r.to_string().contains("already on"), "{r}");
    let r = w.refuse(w.drug.sign(list(vec![o])));
    assert!(
        r.to_string()
            .contains("not a credit authority for domain 'market'"),
        "{r}"
    );
}

#[test]
fn replay_is_refused() {
    let mut w = World::new();
    let (_, farm) = w.enterprise("91310117MA1G0A1B2");
    let rec = farm.sign(commission("b1", 10));
    w.ok(rec.clone());
    let r = w.refuse(rec.clone());
    assert_eq!(r, Rejection::Duplicate(rec.id()));
    // The id covers the envelope, not the signature: re-signing the same envelope
    // cannot mint a second id. A new nonce makes a distinct statement.
    assert_eq!(rec.envelope.clone().sign(&farm.key).id(), rec.id());
    let mut env = rec.envelope.clone();
    env.nonce = env.nonce.wrapping_add(1);
    let r = w.refuse(env.sign(&farm.key));
    assert!(
        matches!(r, Rejection::AlreadyExists { what: "batch", .. }),
        "same batch id again: {r}"
    );
}

#[test]
fn custody_rules() {
    let mut w = World::new();
    let (farm_u, farm) = w.enterprise("91310117MA1G0A1B2");
    let (proc_u, processor) = w.enterprise("91310115MA1H0C3D4");
    let (_, shop) = w.enterprise("91310104MA1J0E5F6");
    w.ok(farm.sign(commission("rice", 100)));
    let r = w.refuse(farm.sign(commission("rice", 5)));
    assert!(
        matches!(r, Rejection::AlreadyExists { what: "batch", .. }),
        "{r}"
    );
    // Only the holder ships; nobody ships more than they hold; units must match.
    let r = w.refuse(processor.sign(ship("rice", 1, &farm_u)));
    assert!(matches!(&r, Rejection::Insufficient { held: 0, .. }), "{r}");
    let r = w.refuse(farm.sign(ship("rice", 101, &proc_u)));
    assert!(
        matches!(
            &r,
            Rejection::Insufficient {
                held: 100,
                wanted: 101,
                ..
            }
        ),
        "{r}"
    );
    let mut s = ship("rice", 10, &proc_u);
    s.quantity.uom = "GRM".into();
    assert!(matches!(
        w.refuse(farm.sign(s)),
        Rejection::UnitMismatch { .. }
    ));
    let s = w.ok(farm.sign(ship("rice", 60, &proc_u)));
    // Only the addressee acknowledges, and only once.
    let recv = Receive {
        shipment: s,
        location: "plant".into(),
        time: t(),
    };
    let r = w.refuse(shop.sign(recv.clone()));
    assert!(
        matches!(
            &r,
            Rejection::Unauthorised {
                kind: "receive",
                ..
            }
        ),
        "{r}"
    );
    w.ok(processor.sign(recv.clone()));
    let again = Receive {
        location: "plant-2".into(),
        ..recv
    };
    assert!(matches!(
        w.refuse(processor.sign(again)),
        Rejection::WrongState {
            what: "shipment",
            ..
        }
    ));
    assert_eq!(
        w.get::<u64>(&key::holding("rice", &farm_u.clone().into())),
        Some(40)
    );
    assert_eq!(
        w.get::<u64>(&key::holding("rice", &proc_u.clone().into())),
        Some(60)
    );
    // Inspections only by the domain's trace authority; recalls by it or the maker.
    let insp = Inspect {
        batch: "rice".into(),
        result: InspectionResult::Pass,
        standard: "GB".into(),
        report: None,
        location: "lab".into(),
        time: t(),
    };
    let r = w.refuse(w.drug.sign(insp.clone()));
    assert!(
        r.to_string()
            .contains("not a trace authority for domain 'food'"),
        "{r}"
    );
    w.ok(w.market.sign(insp));
    let recall = Recall {
        batch: "rice".into(),
        reason: "residue".into(),
        time: t(),
    };
    assert!(matches!(
        w.refuse(processor.sign(recall.clone())),
        Rejection::Unauthorised { .. }
    ));
    w.ok(farm.sign(recall.clone()));
    let again = Recall {
        reason: "again".into(),
        ..recall
    };
    assert!(matches!(
        w.refuse(w.market.sign(again)),
        Rejection::WrongState { .. }
    ));
    let b: st::BatchState = w.get(&key::batch("rice")).unwrap();
    assert_eq!(b.events, 5, "commission, ship, receive, inspect, recall");
}

#[test]
fn transform_consumes_inputs_and_links_outputs() {
    let mut w = World::new();
    let (u, maker) = w.enterprise("91310115MA1H0C3D4");
    w.ok(maker.sign(commission("wheat", 50)));
    let tf = |amount| Transform {
        inputs: vec![BatchAmount {
            batch: "wheat".into(),
            quantity: kg(amount),
        }],
        outputs: vec![NewBatch {
            batch: "flour".into(),
            domain: "food".into(),
            product: Product {
                name: "flour".into(),
                gtin: None,
                drug_code: None,
            },
            lot: "F1".into(),
            quantity: kg(40),
        }],
        location: "mill".into(),
        time: t(),
    };
    assert!(matches!(
        w.refuse(maker.sign(tf(51))),
        Rejection::Insufficient { .. }
    ));
    w.ok(maker.sign(tf(50)));
    assert_eq!(
        w.get::<u64>(&key::holding("wheat", &u.clone().into())),
        None,
        "fully consumed"
    );
    assert_eq!(
        w.get::<u64>(&key::holding("flour", &u.clone().into())),
        Some(40)
    );
    assert!(w.state.contains_key(&key::downstream("wheat", "flour")));
    let flour: st::BatchState = w.get(&key::batch("flour")).unwrap();
    assert_eq!(flour.parents, vec!["wheat".to_string()]);
}

#[test]
fn revoked_key_is_refused_from_then_on_and_rotation_moves_the_binding() {
    let mut w = World::new();
    let (u, old) = w.enterprise("91310117MA1G0A1B2");
    w.ok(old.sign(commission("b1", 10)));
    let new_key = keys::generate().unwrap();
    w.ok(old.sign(common::rotate(&w.c.chain, &u, &new_key)));
    let r = w.refuse(old.sign(commission("b2", 10)));
    assert!(matches!(&r, Rejection::KeyRevoked { .. }), "{r}");
    assert_eq!(r.code(), "key_revoked");
    let new = w.signer(new_key);
    w.ok(new.sign(commission("b2", 10)));
    // Registrar revokes; now no key of the enterprise is accepted.
    w.ok(w.registrar.sign(RevokeEntityKey {
        uscc: u.clone(),
        reason: "key lost".into(),
    }));
    assert!(matches!(
        w.refuse(new.sign(commission("b3", 10))),
        Rejection::KeyRevoked { .. }
    ));
    let r = w.refuse(w.registrar.sign(RevokeEntityKey {
        uscc: u,
        reason: "again".into(),
    }));
    assert!(r.to_string().contains("no key to revoke"), "{r}");
    // A member's key can never be bound to an enterprise, even by its holder.
    let other = Uscc::with_check("91310115MA1H0C3D4").unwrap();
    let r = w.refuse(
        w.registrar
            .sign(common::register(&w.c.chain, &other, "x", &w.market.key)),
    );
    assert!(
        matches!(&r, Rejection::MemberKey { member, .. } if member == "market"),
        "{r}"
    );
    assert_eq!(r.code(), "member_key");
}

/// A key is bound only with its holder's proof of possession for that enterprise on
/// this chain: not made by another key, not one made for another enterprise or chain.
#[test]
fn binding_a_key_needs_a_proof_of_possession_for_that_enterprise() {
    let mut w = World::new();
    let (u, farm) = w.enterprise("91310117MA1G0A1B2");
    let other = Uscc::with_check("91310115MA1H0C3D4").unwrap();
    let k = keys::generate().unwrap();
    let mut reg = common::register(&w.c.chain, &other, "x", &k);
    let cases = [
        // Signed by the registrar's key, not the key bound.
        common::enterprise_possession(&w.c.chain, &other, &w.registrar.key),
        // Made by the key, but for another enterprise or another chain.
        common::enterprise_possession(&w.c.chain, &u, &k),
        common::enterprise_possession(&xinlian_genesis::Hash32([7; 32]), &other, &k),
        xinlian_client::crypto::Signature([0; 64]),
    ];
    for bad in cases {
        reg.possession = bad;
        let r = w.refuse(w.registrar.sign(reg.clone()));
        assert!(
            matches!(&r, Rejection::Stateless(StatelessError::Possession { key, .. }) if *key == public_key(&k)),
            "{r}"
        );
        assert_eq!(r.code(), "bad_possession");
    }
    // A rotation likewise: the enterprise cannot take a key it does not hold.
    let stranger = public_key(&keys::generate().unwrap());
    let r = w.refuse(farm.sign(RotateEntityKey {
        uscc: u.clone(),
        new_key: stranger,
        possession: common::enterprise_possession(&w.c.chain, &u, &farm.key),
    }));
    assert_eq!(r.code(), "bad_possession", "{r}");
    let mut rot = common::rotate(&w.c.chain, &u, &k);
    w.ok(farm.sign(rot.clone()));
    // The proof once used for one enterprise cannot bind the key to another.
    rot.uscc = other;
    let r = w.refuse(w.registrar.sign(rot));
    assert_eq!(r.code(), "bad_possession", "{r}");
}

/// Where a domain's policy hides quantities, amounts are given opened and kept on the
/// ledger as commitments; a clear one there, an opened one elsewhere and a sealed one
/// anywhere are refused (`amount_form`), changing nothing. The batch index commits to
/// no amount for a hidden batch, and a reader given only the ledger form still proves
/// the chain of custody, with the amounts withheld.
#[test]
fn amounts_take_the_form_their_domains_policy_asks() {
    use xinlian_client::hidden::Amount;
    use xinlian_client::provenance::{VerifiedBatch, VerifiedEvent};
    let mut w = World::with_trace(xinlian_genesis::TracePolicy::hiding_quantities("drug"));
    let (maker_u, maker) = w.enterprise("91310117MA1G0A1B2");
    let (hospital, hospital_key) = w.enterprise("91310000MA1FL8TQ3");
    let drug = |batch: &str, amount: Amount| Commission {
        domain: "drug".into(),
        quantity: Quantity {
            amount,
            uom: "KGM".into(),
        },
        ..commission(batch, 1)
    };
    let form = |r: Rejection| {
        assert_eq!(r.code(), "amount_form", "{r}");
        r.to_string()
    };
    let r = form(w.refuse(maker.sign(drug("d1", Amount::Clear(10)))));
    assert!(r.contains("hidden by the domain's policy"), "{r}");
    let r = form(w.refuse(maker.sign(drug("d1", Amount::hide(10).sealed()))));
    assert!(r.contains("sealed"), "{r}");
    let mut food = commission("f1", 10);
    food.quantity.amount = Amount::hide(10);
    let r = form(w.refuse(maker.sign(food)));
    assert!(r.contains("public by the domain's policy"), "{r}");

    let made = maker.sign(drug("d1", Amount::hide(10)));
    w.ok(made.clone());
    let bs: st::BatchState = w.get(&key::batch("d1")).unwrap();
    assert_eq!(
        bs.created_amount, None,
        "the batch index commits to no amount"
    );
    let mut clear_ship = ship("d1", 4, &hospital);
    let r = form(w.refuse(maker.sign(clear_ship.clone())));
    assert!(r.contains("d1"), "{r}");
    clear_ship.quantity.amount = Amount::hide(4);
    let shipped = maker.sign(clear_ship);
    w.ok(shipped.clone());
    let received = hospital_key.sign(Receive {
        shipment: shipped.id(),
        location: "ward".into(),
        time: t(),
    });
    w.ok(received.clone());
    let held = |u: &Uscc| w.get::<u64>(&key::holding("d1", &u.clone().into()));
    assert_eq!(held(&hospital), Some(4), "validators keep the amounts");

    // The verifier's replay: amounts from the opened records, custody alone from the
    // ledger forms.
    let events = |public: bool| -> Vec<VerifiedEvent> {
        [
            (&made, &maker_u),
            (&shipped, &maker_u),
            (&received, &hospital),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (r, by))| VerifiedEvent {
            id: r.id(),
            ledger_index: i as u64,
            record: match public {
                true => r.ledger_form().into_owned(),
                false => r.clone(),
            },
            signer: xinlian_client::proof::SignerAuthority::Enterprise {
                uscc: by.clone(),
                bound_by: Vec::new(),
                registrar: "registrar".into(),
            },
        })
        .collect()
    };
    let full = VerifiedBatch::from_events(bs.clone(), events(false), w.height).unwrap();
    assert!(!full.amounts_withheld);
    assert_eq!(full.holders.get(&hospital.clone().into()), Some(&Some(4)));
    assert_eq!(full.created_amount(), Some(10));
    let public = VerifiedBatch::from_events(bs, events(true), w.height).unwrap();
    assert!(public.amounts_withheld);
    assert_eq!(public.created_amount(), None);
    assert_eq!(public.transfers.len(), 1);
    assert_eq!(public.transfers[0].to, hospital.clone().into());
    assert_eq!(public.transfers[0].amount, None);
    assert_eq!(public.transfers[0].receipt, Some(received.id()));
    assert!(public.holders.values().all(Option::is_none));
    assert!(public.holders.contains_key(&hospital.clone().into()));
}

/// A registration's operator is personal data: only sealed (not even a document's
/// hash), and only the registrar that registered the enterprise decides its erasure,
/// once; a registration without one has nothing to erase.
#[test]
fn an_operator_is_sealed_and_erased_only_by_its_registrar() {
    let mut w = World::new();
    let chain = w.c.chain;
    let reg = |payload: &str, operator| {
        let u = Uscc::with_check(payload).unwrap();
        let mut r = common::register(&chain, &u, payload, &keys::generate().unwrap());
        r.operator = operator;
        r
    };
    let doc = reg(
        "92310000MA1FL8TQ3",
        Some(Content::Document(xinlian_genesis::Hash32([1; 32]))),
    );
    let doc = w.registrar.sign(doc);
    let r = w.refuse(doc);
    assert!(r.to_string().contains("must be sealed"), "{r}");
    let bare = w.registrar.sign(reg("91310117MA1G0A1B2", None));
    let bare = w.ok(bare);
    let sealed = reg(
        "92310115MA1H0C3D4",
        Some(Content::Sealed(xinlian_genesis::Hash32([2; 32]))),
    );
    let sealed = w.registrar.sign(sealed);
    let sealed = w.ok(sealed);
    let erase = |record| Erase {
        record,
        document: "沪市监删〔2026〕3号".into(),
        reason: "PIPL art. 47".into(),
        date: Date::parse("2026-11-01").unwrap(),
    };
    let e = w.registrar.sign(erase(bare));
    assert!(matches!(w.refuse(e), Rejection::NotFound { .. }));
    let e = w.market.sign(erase(sealed));
    assert!(matches!(w.refuse(e), Rejection::Unauthorised { .. }));
    let e = w.registrar.sign(erase(sealed));
    w.ok(e.clone());
    assert!(matches!(w.refuse(e), Rejection::Duplicate(_)), "once");
    let again = w.registrar.sign(Erase {
        reason: "asked again".into(),
        ..erase(sealed)
    });
    assert!(matches!(w.refuse(again), Rejection::WrongState { .. }));
}

/// A domain that hides counterparties: a registrar binds custody keys (the enterprise
/// sealed, the key's holder proving possession for that domain), and a batch made there
/// names its parties by custody keys for its life; every other form is refused with
/// `party_form`, and state and the verifier's replay know only the pseudonyms.
#[test]
fn a_domain_hiding_counterparties_names_its_parties_by_custody_keys() {
    use xinlian_client::crypto::{KeyHolder, prove_possession};
    use xinlian_client::party::Party;
    use xinlian_client::provenance::{VerifiedBatch, VerifiedEvent};
    use xinlian_genesis::TraceField;
    let mut w = World::with_trace(xinlian_genesis::TracePolicy::hiding(
        "drug",
        &[TraceField::Counterparty],
    ));
    let chain = w.c.chain;
    let (maker_u, maker) = w.enterprise("91310117MA1G0A1B2");
    let (hospital_u, _) = w.enterprise("91310000MA1FL8TQ3");
    let custody = |domain: &str, key: &SigningKey| BindCustodyKey {
        domain: domain.into(),
        key: public_key(key),
        enterprise: Content::Sealed(xinlian_genesis::Hash32([3; 32])),
        possession: prove_possession(key, &chain, KeyHolder::Custody(domain)),
    };
    let (mk, hk) = (keys::generate().unwrap(), keys::generate().unwrap());
    // Binding: a registrar's, for a domain that hides counterparties, the enterprise
    // sealed, the possession for that domain; the key never bound before.
    let mut clear = custody("drug", &mk);
    clear.enterprise = Content::Text(maker_u.as_str().into());
    let r = w.refuse(w.registrar.sign(clear));
    assert_eq!(r.code(), "in_clear", "{r}");
    let mut other_domain = custody("drug", &mk);
    other_domain.possession = prove_possession(&mk, &chain, KeyHolder::Custody("food"));
    let r = w.refuse(w.registrar.sign(other_domain));
    assert_eq!(r.code(), "bad_possession", "{r}");
    let r = w.refuse(w.registrar.sign(custody("food", &mk)));
    assert!(
        r.to_string().contains("does not hide counterparties"),
        "{r}"
    );
    let r = w.refuse(maker.sign(custody("drug", &mk)));
    assert!(matches!(r, Rejection::Unauthorised { .. }), "{r}");
    let bound = w.registrar.sign(custody("drug", &mk));
    w.ok(bound.clone());
    w.ok(w.registrar.sign(custody("drug", &hk)));
    let r = w.refuse(w.registrar.sign(custody("drug", &mk)));
    assert!(matches!(r, Rejection::AlreadyExists { .. }), "{r}");
    let reuse = common::register(
        &chain,
        &Uscc::with_check("92310115MA1H0C3D4").unwrap(),
        "x",
        &mk,
    );
    let r = w.refuse(w.registrar.sign(reuse));
    assert!(
        r.to_string().contains("a custody key for domain drug"),
        "{r}"
    );

    let (maker_c, hospital_c) = (w.signer(mk.clone()), w.signer(hk.clone()));
    let (mp, hp) = (
        Party::Custody(public_key(&mk)),
        Party::Custody(public_key(&hk)),
    );
    let drug = |batch: &str| Commission {
        domain: "drug".into(),
        ..commission(batch, 10)
    };
    let form = |r: Rejection| {
        assert_eq!(r.code(), "party_form", "{r}");
        r.to_string()
    };
    // Made with the enterprise's own key: refused; with the custody key: the batch is
    // the pseudonym's.
    let r = form(w.refuse(maker.sign(drug("d1"))));
    assert!(r.contains("custody key"), "{r}");
    let made = maker_c.sign(drug("d1"));
    w.ok(made.clone());
    let bs: st::BatchState = w.get(&key::batch("d1")).unwrap();
    assert_eq!(bs.created_by, mp);
    assert_eq!(w.get::<u64>(&key::holding("d1", &mp)), Some(10));
    // A custody key cannot act where parties are named by USCC, nor sign a credit
    // record.
    let r = form(w.refuse(maker_c.sign(commission("f1", 5))));
    assert!(r.contains("by USCC"), "{r}");
    let r = w.refuse(maker_c.sign(commitment(
        &maker_u,
        CommitmentKind::VoluntaryPublic,
        "market",
        "market",
    )));
    assert!(matches!(r, Rejection::Unauthorised { .. }), "{r}");
    // The addressee in the batch's form: a USCC, or a key that is no custody key, is
    // refused.
    let r = form(w.refuse(maker_c.sign(ship("d1", 4, &hospital_u))));
    assert!(r.contains("custody key"), "{r}");
    let mut to_stranger = ship("d1", 4, &hospital_u);
    to_stranger.to = Party::Custody(public_key(&keys::generate().unwrap()));
    let r = w.refuse(maker_c.sign(to_stranger));
    assert!(
        matches!(
            r,
            Rejection::NotFound {
                what: "custody key",
                ..
            }
        ),
        "{r}"
    );
    let mut shipment = ship("d1", 4, &hospital_u);
    shipment.to = hp.clone();
    let shipped = maker_c.sign(shipment);
    w.ok(shipped.clone());
    let receipt = Receive {
        shipment: shipped.id(),
        location: "ward".into(),
        time: t(),
    };
    // Only the addressee's custody key receives it.
    let r = w.refuse(maker_c.sign(receipt.clone()));
    assert!(matches!(r, Rejection::Unauthorised { .. }), "{r}");
    // Signed with an enterprise's own key, it is the wrong form, whoever's key it is.
    let r = w.refuse(maker.sign(receipt.clone()));
    assert_eq!(r.code(), "party_form", "{r}");
    let received = hospital_c.sign(receipt);
    w.ok(received.clone());
    assert_eq!(w.get::<u64>(&key::holding("d1", &hp)), Some(4));
    assert_eq!(w.get::<u64>(&key::holding("d1", &mp)), Some(6));
    // Indexed under no enterprise.
    let listed = |u: &Uscc| {
        (0..w.next_index).any(|i| {
            w.get::<RecordId>(&key::subject_record(u, i))
                .is_some_and(|id| id == made.id() || id == shipped.id())
        })
    };
    assert!(!listed(&maker_u) && !listed(&hospital_u));

    // The verifier: custody between pseudonyms; an event signed in the wrong form, or
    // by a custody key of another domain, is refused.
    let authority = |domain: &str| xinlian_client::proof::SignerAuthority::Custody {
        domain: domain.into(),
        bound_by: bound.id(),
        registrar: "registrar".into(),
    };
    let events = |domain: &str| -> Vec<VerifiedEvent> {
        [&made, &shipped, &received]
            .into_iter()
            .enumerate()
            .map(|(i, r)| VerifiedEvent {
                id: r.id(),
                ledger_index: i as u64,
                record: r.clone(),
                signer: authority(domain),
            })
            .collect()
    };
    let vb = VerifiedBatch::from_events(bs.clone(), events("drug"), w.height).unwrap();
    assert_eq!(vb.holders.get(&hp), Some(&Some(4)));
    assert_eq!(vb.holders.get(&mp), Some(&Some(6)));
    assert_eq!((&vb.transfers[0].from, &vb.transfers[0].to), (&mp, &hp));
    let e = VerifiedBatch::from_events(bs.clone(), events("food"), w.height).unwrap_err();
    assert!(e.to_string().contains("bound for domain food"), "{e}");
    let mut by_uscc = events("drug");
    by_uscc[1].signer = xinlian_client::proof::SignerAuthority::Enterprise {
        uscc: maker_u.clone(),
        bound_by: Vec::new(),
        registrar: "registrar".into(),
    };
    let e = VerifiedBatch::from_events(bs.clone(), by_uscc, w.height).unwrap_err();
    assert!(
        e.to_string()
            .contains("not in the form the batch names its parties in"),
        "{e}"
    );
    // The verifier also holds a shipment to its form: addressed by USCC, it is refused.
    let mut by_uscc_to = events("drug");
    let mut to_uscc = shipped.clone();
    if let Body::Ship(s) = &mut to_uscc.envelope.body {
        s.to = hospital_u.clone().into();
    }
    by_uscc_to[1].record = to_uscc;
    let e = VerifiedBatch::from_events(bs.clone(), by_uscc_to, w.height).unwrap_err();
    assert!(e.to_string().contains("addressed to"), "{e}");

    // A stolen custody key is revoked by a registrar: it signs nothing from then on,
    // and what it holds stays held under it.
    let revoke = RevokeCustodyKey {
        key: public_key(&mk),
        reason: "stolen".into(),
    };
    let r = w.refuse(maker.sign(revoke.clone()));
    assert!(matches!(r, Rejection::Unauthorised { .. }), "{r}");
    w.ok(w.registrar.sign(revoke.clone()));
    let again = RevokeCustodyKey {
        reason: "again".into(),
        ..revoke
    };
    let r = w.refuse(w.registrar.sign(again));
    assert!(r.to_string().contains("already revoked"), "{r}");
    let mut sale = ship("d1", 1, &hospital_u);
    sale.to = hp.clone();
    let r = w.refuse(maker_c.sign(sale));
    assert_eq!(r.code(), "key_revoked", "{r}");
    assert!(
        r.to_string().contains("a custody key for domain drug"),
        "{r}"
    );
    assert_eq!(w.get::<u64>(&key::holding("d1", &mp)), Some(6));
    // Nor is it shipped anything: no receipt it signed would be accepted.
    let mut back = ship("d1", 1, &maker_u);
    back.to = mp.clone();
    let r = w.refuse(hospital_c.sign(back));
    assert_eq!(r.code(), "key_revoked", "{r}");
}
