//! Custody arithmetic is computed twice, on purpose: execution keeps one holding per
//! (batch, holder) in state and refuses a move the holder cannot cover; a verifier
//! trusts no node's arithmetic and re-derives holders, shipments in transit, sales,
//! consumption and children from a batch's proven events alone
//! (`VerifiedBatch::from_events`). This checks, on random chains of commissions,
//! shipments, receipts, transforms, sales, inspections and recalls, that the two agree
//! after every record execution accepts, and that where execution refuses a move for
//! want of quantity, or a receipt by the wrong party or of a closed shipment, the
//! verifier's derivation would refuse that event too, for the same reason.
//!
//! Each chain runs twice: once with quantities in clear and once in a consortium whose
//! policy hides them (signed opened, on the ledger as commitments). Hiding must change
//! nothing execution decides, and the verifier, given only the ledger form, proves the
//! same chain of custody with every amount withheld.

mod common;

use common::member;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use xinlian_client::checks::check_stateless;
use xinlian_client::hidden::Amount;
use xinlian_client::ids::Uscc;
use xinlian_client::party::Party;
use xinlian_client::proof::SignerAuthority;
use xinlian_client::provenance::{ProvenanceError, VerifiedBatch, VerifiedEvent};
use xinlian_client::record::*;
use xinlian_client::state::{self as st, key};
use xinlian_client::when::EventTime;
use xinlian_core::execute::{BlockContext, Consortium, ExecError, Rejection, execute_record};
use xinlian_core::overlay::Overlay;
use xinlian_genesis::canonical;
use xinlian_genesis::keys::{SigningKey, public_key};
use xinlian_genesis::{PublicKey, Role, TracePolicy};

/// 2026-11-29 00:00 Beijing time.
const NOW_MS: i64 = 1_795_881_600_000 - 8 * 3_600_000;
const ENTERPRISES: usize = 3;

fn key_of(tag: u8) -> SigningKey {
    SigningKey::from_bytes(&[tag; 32])
}

fn at() -> EventTime {
    EventTime {
        unix_ms: NOW_MS,
        offset_minutes: 480,
    }
}

fn product() -> Product {
    Product {
        name: "rice".into(),
        gtin: None,
        drug_code: None,
    }
}

/// An amount, now and then in the wrong unit.
#[derive(Clone, Copy, Debug)]
struct Qty {
    amount: u64,
    grams: bool,
}

impl Qty {
    /// In clear, or opened for the validators where the domain hides quantities.
    fn quantity(self, hide: bool) -> Quantity {
        Quantity {
            amount: match hide {
                true => Amount::hide(self.amount),
                false => Amount::Clear(self.amount),
            },
            uom: if self.grams { "GRM" } else { "KGM" }.into(),
        }
    }
}

/// Who signs a move: the `i`-th current holder of the batch, or any enterprise.
#[derive(Clone, Copy, Debug)]
enum Who {
    Holder(usize),
    Anyone(usize),
}

/// A step of a chain; indices pick among what exists when it runs.
#[derive(Clone, Debug)]
enum Op {
    Commission {
        by: usize,
        amount: u64,
        /// Reuses an existing batch's name, which execution refuses.
        clash: bool,
    },
    Ship {
        batch: usize,
        by: Who,
        to: usize,
        qty: Qty,
    },
    Receive {
        ship: usize,
        /// Picks among shipments not yet received, if any.
        open: bool,
        by_addressee: bool,
        by: usize,
    },
    Transform {
        by: Who,
        inputs: Vec<(usize, Qty)>,
        /// Amounts made, each maybe under an existing batch's name (`clash`).
        outputs: Vec<(u64, bool)>,
    },
    Sell {
        batch: usize,
        by: Who,
        qty: Qty,
    },
    Inspect {
        batch: usize,
    },
    Recall {
        batch: usize,
        by_maker: bool,
    },
}

fn qty() -> impl Strategy<Value = Qty> {
    (1..=60u64, prop::bool::weighted(0.05)).prop_map(|(amount, grams)| Qty { amount, grams })
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        4 => any::<usize>().prop_map(Who::Holder),
        1 => any::<usize>().prop_map(Who::Anyone),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let clash = prop::bool::weighted(0.05);
    prop_oneof![
        2 => (any::<usize>(), 1..=100u64, clash)
            .prop_map(|(by, amount, clash)| Op::Commission { by, amount, clash }),
        4 => (any::<usize>(), who(), any::<usize>(), qty())
            .prop_map(|(batch, by, to, qty)| Op::Ship { batch, by, to, qty }),
        4 => (
            any::<usize>(),
            prop::bool::weighted(0.85),
            prop::bool::weighted(0.85),
            any::<usize>(),
        )
            .prop_map(|(ship, open, by_addressee, by)| Op::Receive {
                ship,
                open,
                by_addressee,
                by,
            }),
        2 => (
            who(),
            prop::collection::vec((any::<usize>(), qty()), 1..=2),
            prop::collection::vec((1..=100u64, clash), 1..=2),
        )
            .prop_map(|(by, inputs, outputs)| Op::Transform { by, inputs, outputs }),
        2 => (any::<usize>(), who(), qty())
            .prop_map(|(batch, by, qty)| Op::Sell { batch, by, qty }),
        1 => any::<usize>().prop_map(|batch| Op::Inspect { batch }),
        1 => (any::<usize>(), any::<bool>())
            .prop_map(|(batch, by_maker)| Op::Recall { batch, by_maker }),
    ]
}

/// A ledger in memory, with the records it holds and the test's own tally of what
/// left each batch by sale and by transform.
struct Chain {
    c: Consortium,
    /// Whether the consortium's policy hides the quantities of the `food` domain.
    hiding: bool,
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    height: u64,
    next_index: u64,
    nonce: u64,
    registrar: SigningKey,
    inspector: SigningKey,
    enterprises: Vec<(Uscc, SigningKey)>,
    /// Accepted records by id, with their ledger index.
    records: BTreeMap<RecordId, (u64, SignedRecord)>,
    batches: Vec<String>,
    ships: Vec<RecordId>,
    sold: BTreeMap<String, u64>,
    consumed: BTreeMap<String, u64>,
    /// Every enterprise that has held some of each batch, as execution's state said
    /// after each record.
    ever_held: BTreeMap<String, BTreeSet<Party>>,
}

impl Chain {
    fn new(hiding: bool) -> Chain {
        let (v, vn, registrar, inspector) = (key_of(1), key_of(2), key_of(3), key_of(4));
        let inspecting = vec![Role::TraceAuthority("food".into())];
        let mut genesis = common::genesis_with(
            "custody",
            (&v, &vn, &registrar),
            vec![member("inspector", inspecting, &inspector, None)],
        );
        if hiding {
            genesis.policy.trace = TracePolicy::hiding_quantities("food");
        }
        let mut chain = Chain {
            c: Consortium::new(genesis),
            hiding,
            state: BTreeMap::new(),
            height: 1,
            next_index: 0,
            nonce: 0,
            registrar,
            inspector,
            enterprises: Vec::new(),
            records: BTreeMap::new(),
            batches: Vec::new(),
            ships: Vec::new(),
            sold: BTreeMap::new(),
            consumed: BTreeMap::new(),
            ever_held: BTreeMap::new(),
        };
        for (i, payload) in [
            "91310117MA1G0A1B2",
            "91310115MA1H0C3D4",
            "91310104MA1J0E5F6",
        ]
        .into_iter()
        .enumerate()
        {
            let uscc = Uscc::with_check(payload).unwrap();
            let k = key_of(10 + i as u8);
            let reg = RegisterEntity {
                operator: None,
                uscc: uscc.clone(),
                name: payload.into(),
                key: public_key(&k),
                check_override: None,
                possession: xinlian_client::crypto::prove_possession(
                    &k,
                    &chain.c.chain,
                    xinlian_client::crypto::KeyHolder::Enterprise(uscc.as_str()),
                ),
            };
            let registrar = chain.registrar.clone();
            chain.submit(&registrar, reg.into()).expect("registered");
            chain.enterprises.push((uscc, k));
        }
        chain
    }

    fn get<T: serde::Serialize + serde::de::DeserializeOwned>(&self, k: &[u8]) -> Option<T> {
        self.state
            .get(k)
            .map(|v| canonical::decode(v, usize::MAX).unwrap())
    }

    fn sign(&mut self, k: &SigningKey, body: Body) -> SignedRecord {
        self.nonce += 1;
        Envelope {
            chain: self.c.chain,
            signer: public_key(k),
            nonce: self.nonce,
            body,
        }
        .sign(k)
    }

    /// Signs and executes a record. On acceptance applies its writes and keeps it; on
    /// refusal checks that the verifier would refuse it too, where it can tell.
    fn submit(&mut self, k: &SigningKey, body: Body) -> Option<RecordId> {
        let rec = self.sign(k, body);
        let enc = EncodedRecord::new(rec.clone());
        if check_stateless(&enc, &self.c.chain).is_err() {
            return None;
        }
        let ctx = BlockContext {
            height: self.height,
            time_ms: NOW_MS,
        };
        let mut o = Overlay::new(&self.state);
        let out = execute_record(&mut o, &self.c, &ctx, &enc, self.next_index);
        let writes = o.into_writes();
        match out {
            Ok(()) => {
                common::apply(&mut self.state, writes);
                self.records
                    .insert(rec.id(), (self.next_index, rec.clone()));
                self.next_index += 1;
                self.height += 1;
                Some(rec.id())
            }
            Err(ExecError::Rejected(r)) => {
                assert!(writes.is_empty(), "a refused record left writes: {r}");
                self.verifier_refuses_too(&rec, &r);
                None
            }
            Err(ExecError::State(e)) => panic!("state error {e}"),
        }
    }

    fn enterprise(&self, i: usize) -> &(Uscc, SigningKey) {
        &self.enterprises[i % ENTERPRISES]
    }

    fn key_of_uscc(&self, p: &Party) -> SigningKey {
        self.enterprises
            .iter()
            .find(|(e, _)| p.uscc() == Some(e))
            .map(|(_, k)| k.clone())
            .unwrap()
    }

    fn batch(&self, i: usize) -> String {
        if self.batches.is_empty() {
            return "none".into();
        }
        self.batches[i % self.batches.len()].clone()
    }

    fn fresh_batch(&self, clash: bool) -> String {
        if clash && !self.batches.is_empty() {
            return self.batch(self.batches.len() - 1);
        }
        format!("b{}", self.nonce)
    }

    /// Execution's holdings of a batch, read from state under its prefix.
    fn holdings(&self, batch: &str) -> BTreeMap<Party, u64> {
        let prefix = key::holdings_prefix(batch);
        self.state
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| {
                let u = Party::from_key_bytes(&k[prefix.len()..]).unwrap();
                let held: u64 = canonical::decode(v, usize::MAX).unwrap();
                assert!(held > 0, "execution keeps no empty holding");
                (u, held)
            })
            .collect()
    }

    fn signer_key(&self, who: Who, batch: &str) -> SigningKey {
        let holders: Vec<Party> = self.holdings(batch).into_keys().collect();
        match who {
            Who::Holder(i) if !holders.is_empty() => self.key_of_uscc(&holders[i % holders.len()]),
            Who::Holder(i) | Who::Anyone(i) => self.enterprise(i).1.clone(),
        }
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Commission { by, amount, clash } => {
                let k = self.enterprise(*by).1.clone();
                let batch = self.fresh_batch(*clash);
                let body = Commission {
                    batch: batch.clone(),
                    domain: "food".into(),
                    product: product(),
                    lot: "L1".into(),
                    quantity: Qty {
                        amount: *amount,
                        grams: false,
                    }
                    .quantity(self.hiding),
                    origin: "farm".into(),
                    time: at(),
                };
                if self.submit(&k, body.into()).is_some() {
                    self.batches.push(batch);
                }
            }
            Op::Ship { batch, by, to, qty } => {
                let batch = self.batch(*batch);
                let k = self.signer_key(*by, &batch);
                // Now and then to the sender itself, which execution refuses.
                let from = self.enterprises.iter().position(|e| e.1 == k).unwrap();
                let to = match to % 8 {
                    0 => from,
                    t => from + 1 + t % (ENTERPRISES - 1),
                };
                let body = Ship {
                    batch: batch.clone(),
                    quantity: qty.quantity(self.hiding),
                    to: self.enterprise(to).0.clone().into(),
                    from_location: "a".into(),
                    to_location: "b".into(),
                    time: at(),
                };
                if let Some(id) = self.submit(&k, body.into()) {
                    self.ships.push(id);
                }
            }
            Op::Receive {
                ship,
                open,
                by_addressee,
                by,
            } => {
                let open_ships: Vec<RecordId> = self
                    .ships
                    .iter()
                    .filter(|id| {
                        let sh: st::Shipment = self.get(&key::shipment(id)).unwrap();
                        sh.received.is_none()
                    })
                    .copied()
                    .collect();
                let among = if *open && !open_ships.is_empty() {
                    &open_ships
                } else {
                    &self.ships
                };
                let shipment = match among.len() {
                    0 => RecordId([0; 32]),
                    n => among[ship % n],
                };
                let k = match self.get::<st::Shipment>(&key::shipment(&shipment)) {
                    Some(sh) if *by_addressee => self.key_of_uscc(&sh.to),
                    _ => self.enterprise(*by).1.clone(),
                };
                let body = Receive {
                    shipment,
                    location: "dock".into(),
                    time: at(),
                };
                self.submit(&k, body.into());
            }
            Op::Transform {
                by,
                inputs,
                outputs,
            } => {
                let inputs: Vec<BatchAmount> = inputs
                    .iter()
                    .map(|(b, q)| BatchAmount {
                        batch: self.batch(*b),
                        quantity: q.quantity(self.hiding),
                    })
                    .collect();
                let k = self.signer_key(*by, &inputs[0].batch);
                let outputs: Vec<NewBatch> = outputs
                    .iter()
                    .enumerate()
                    .map(|(i, (amount, clash))| NewBatch {
                        batch: match self.fresh_batch(*clash) {
                            b if *clash => b,
                            b => format!("{b}-{i}"),
                        },
                        domain: "food".into(),
                        product: product(),
                        lot: "T1".into(),
                        quantity: Qty {
                            amount: *amount,
                            grams: false,
                        }
                        .quantity(self.hiding),
                    })
                    .collect();
                let body = Transform {
                    inputs: inputs.clone(),
                    outputs: outputs.clone(),
                    location: "plant".into(),
                    time: at(),
                };
                if self.submit(&k, body.into()).is_some() {
                    for i in &inputs {
                        *self.consumed.entry(i.batch.clone()).or_default() +=
                            i.quantity.amount.value().unwrap();
                    }
                    self.batches.extend(outputs.into_iter().map(|o| o.batch));
                }
            }
            Op::Sell { batch, by, qty } => {
                let batch = self.batch(*batch);
                let k = self.signer_key(*by, &batch);
                let body = Sell {
                    batch: batch.clone(),
                    quantity: qty.quantity(self.hiding),
                    kind: SaleKind::RetailSold,
                    location: "shop".into(),
                    time: at(),
                };
                if self.submit(&k, body.into()).is_some() {
                    *self.sold.entry(batch).or_default() += qty.amount;
                }
            }
            Op::Inspect { batch } => {
                let body = Inspect {
                    batch: self.batch(*batch),
                    result: InspectionResult::Pass,
                    standard: "GB 2763".into(),
                    report: None,
                    location: "lab".into(),
                    time: at(),
                };
                let k = self.inspector.clone();
                self.submit(&k, body.into());
            }
            Op::Recall { batch, by_maker } => {
                let batch = self.batch(*batch);
                let k = match self.get::<st::BatchState>(&key::batch(&batch)) {
                    Some(bs) if *by_maker => self.key_of_uscc(&bs.created_by),
                    _ => self.inspector.clone(),
                };
                let body = Recall {
                    batch,
                    reason: "residue".into(),
                    time: at(),
                };
                self.submit(&k, body.into());
            }
        }
    }

    fn authority(&self, signer: &PublicKey) -> SignerAuthority {
        if let Some(m) = self.c.member_by_signing_key(signer) {
            return SignerAuthority::Member {
                id: m.id.clone(),
                roles: m.roles.iter().map(|r| r.to_string()).collect(),
            };
        }
        let kb: st::KeyBinding = self.get(&key::key_binding(signer)).unwrap();
        SignerAuthority::Enterprise {
            uscc: kb.uscc,
            bound_by: vec![kb.bound_by],
            registrar: "registrar".into(),
        }
    }

    /// A record as a reader who is neither a member nor a party receives it: in its
    /// ledger form, hidden amounts as their commitments.
    fn event(&self, index: u64, rec: &SignedRecord) -> VerifiedEvent {
        VerifiedEvent {
            id: rec.id(),
            ledger_index: index,
            record: rec.ledger_form().into_owned(),
            signer: self.authority(&rec.envelope.signer),
        }
    }

    /// A batch's state and its events as a verifier receives them once proven.
    fn evidence(&self, batch: &str) -> (st::BatchState, Vec<VerifiedEvent>) {
        let bs: st::BatchState = self.get(&key::batch(batch)).unwrap();
        let events = (0..bs.events)
            .map(|seq| {
                let id: RecordId = self.get(&key::batch_event(batch, seq)).unwrap();
                let (index, rec) = &self.records[&id];
                self.event(*index, rec)
            })
            .collect();
        (bs, events)
    }

    /// The verifier's derivation of every batch agrees with execution's state: the
    /// same chain of custody, and the same amounts unless the policy withholds them.
    fn agree(&mut self) {
        for batch in self.batches.clone() {
            let (bs, events) = self.evidence(&batch);
            let vb = VerifiedBatch::from_events(bs.clone(), events, self.height)
                .unwrap_or_else(|e| panic!("the verifier refuses what execution accepted: {e}"));
            let holdings = self.holdings(&batch);
            let ever = self.ever_held.entry(batch.clone()).or_default();
            ever.extend(holdings.keys().cloned());
            let ever = ever.clone();
            let shipments: Vec<st::Shipment> = (self.ships.iter())
                .map(|id| self.get::<st::Shipment>(&key::shipment(id)).unwrap())
                .filter(|sh| sh.batch == *batch && sh.received.is_none())
                .collect();
            let parties = |from: &Party, to: &Party| (from.clone(), to.clone());
            let in_transit: BTreeSet<_> = (shipments.iter())
                .map(|sh| (sh.ship, parties(&sh.from, &sh.to)))
                .collect();
            let derived: BTreeSet<_> = (vb.in_transit.iter())
                .map(|t| (t.ship, parties(&t.from, &t.to)))
                .collect();
            assert_eq!(derived, in_transit, "in transit of {batch}");
            assert_eq!(vb.amounts_withheld, self.hiding, "{batch}'s amounts");
            if self.hiding {
                // Every party that has held some, none with an amount.
                let holders: BTreeSet<Party> = vb.holders.keys().cloned().collect();
                assert_eq!(holders, ever, "holders of {batch}");
                assert!(vb.holders.values().all(Option::is_none), "{vb:?}");
                assert!(vb.in_transit.iter().all(|t| t.amount.is_none()), "{vb:?}");
                assert_eq!((vb.sold, vb.consumed), (None, None), "{batch}");
                assert_eq!(vb.created_amount(), None, "{batch}");
            } else {
                self.amounts_agree(&batch, &vb, &holdings, &shipments);
            }
            let prefix = key::downstream_prefix(&batch);
            let downstream: BTreeSet<String> = self
                .state
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, _)| String::from_utf8(k[prefix.len()..].to_vec()).unwrap())
                .collect();
            let children: BTreeSet<String> = vb.children.iter().cloned().collect();
            assert_eq!(children, downstream, "children of {batch}");
        }
    }

    /// In clear, the verifier's amounts are execution's, and the batch neither gains
    /// nor loses.
    fn amounts_agree(
        &self,
        batch: &str,
        vb: &VerifiedBatch,
        holdings: &BTreeMap<Party, u64>,
        shipments: &[st::Shipment],
    ) {
        let known: BTreeMap<Party, u64> = (vb.holders.iter())
            .map(|(u, a)| (u.clone(), a.expect("the model's amounts are in clear")))
            .collect();
        assert_eq!(&known, holdings, "holders of {batch}");
        let moving: BTreeMap<RecordId, u64> =
            shipments.iter().map(|sh| (sh.ship, sh.amount)).collect();
        let derived: BTreeMap<RecordId, u64> = (vb.in_transit.iter())
            .map(|t| (t.ship, t.amount.unwrap()))
            .collect();
        assert_eq!(derived, moving, "amounts in transit of {batch}");
        let tally = |m: &BTreeMap<String, u64>| m.get(batch).copied().unwrap_or(0);
        let (sold, consumed) = (tally(&self.sold), tally(&self.consumed));
        assert_eq!(vb.sold, Some(sold), "sold of {batch}");
        assert_eq!(vb.consumed, Some(consumed), "consumed of {batch}");
        assert_eq!(
            Some(holdings.values().sum::<u64>() + moving.values().sum::<u64>() + sold + consumed),
            vb.created_amount(),
            "{batch} neither gains nor loses"
        );
    }

    /// Where execution refused a move for want of quantity, or a receipt by other than
    /// the addressee or of a closed shipment, the verifier's derivation refuses the
    /// same event appended to the batch's proven events.
    fn verifier_refuses_too(&self, rec: &SignedRecord, r: &Rejection) {
        let (batch, expected) = match (&rec.envelope.body, r) {
            // With amounts withheld the verifier cannot tell how much a holder holds.
            (_, Rejection::Insufficient { .. }) if self.hiding => return,
            (
                Body::Ship(_) | Body::Sell(_) | Body::Transform(_),
                Rejection::Insufficient {
                    batch,
                    holder,
                    held,
                    wanted,
                    ..
                },
            ) => (
                batch.clone(),
                format!("{holder} gives {wanted} but holds {held}"),
            ),
            (Body::Receive(b), Rejection::Unauthorised { .. } | Rejection::WrongState { .. }) => {
                let sh: st::Shipment = self.get(&key::shipment(&b.shipment)).unwrap();
                let reason = if sh.received.is_some() {
                    format!(
                        "receives shipment {} which is not an open shipment of this batch",
                        b.shipment
                    )
                } else {
                    format!("received by other than the addressee {}", sh.to)
                };
                (sh.batch, reason)
            }
            _ => return,
        };
        let (bs, mut events) = self.evidence(&batch);
        events.push(self.event(self.next_index, rec));
        match VerifiedBatch::from_events(bs, events, self.height) {
            Err(ProvenanceError::Event { reason, .. }) => {
                assert_eq!(reason, expected, "execution refused with: {r}")
            }
            Err(e) => panic!("execution refused ({r}), the verifier for another reason: {e}"),
            Ok(_) => panic!("execution refused ({r}), the verifier accepts the event"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn execution_and_the_verifier_agree_on_custody(ops in prop::collection::vec(op(), 1..64)) {
        let (mut clear, mut hiding) = (Chain::new(false), Chain::new(true));
        for op in &ops {
            clear.run(op);
            hiding.run(op);
            prop_assert_eq!(clear.next_index, hiding.next_index, "hiding changed a verdict");
            for batch in &clear.batches {
                prop_assert_eq!(clear.holdings(batch), hiding.holdings(batch));
            }
            clear.agree();
            hiding.agree();
        }
    }
}
