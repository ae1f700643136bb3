//! The fuzz consortium and its chain: genesis, five certified blocks of registrations,
//! a key rotation and a small food supply chain (commission, ship, receive, inspect,
//! transform, sell, recall), built with `xinlian_core::chain::build_block` and signed
//! by all four validators; then the record proofs and provenance answers a node would
//! serve for it, and what a light client must conclude from each.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use xinlian_client::block::{Block, Certificate, CommitSignature, Precommit};
use xinlian_client::crypto::{KeyHolder, prove_possession};
use xinlian_client::credit::{CreditError, CreditProof, VerifiedCredit};
use xinlian_client::ids::Uscc;
use xinlian_client::merkle::{Leaves, inclusion_proof, leaf_hash};
use xinlian_client::proof::{
    BUNDLE_FORMAT, Bundle, Checkpoint, HexBytes, LedgerEntry, LightClient, RecordProof,
    VerifiedRecord,
};
use xinlian_client::provenance::{
    BatchEvidence, Direction, Provenance, ProvenanceProof, SignerBindings, VerifiedBatch,
};
use xinlian_client::record::*;
use xinlian_client::smt;
use xinlian_client::state::{self as st, key};
use xinlian_client::when::EventTime;
use xinlian_core::index::{self, Index};
use xinlian_core::chain::{Tip, build_block};
use xinlian_core::execute::Consortium;
use xinlian_core::overlay::{StateError, StateRead};
use xinlian_genesis::keys::{SigningKey, public_key};
use xinlian_genesis::{Genesis, Hash32, Member, Policy, PublicKey, Role, canonical};

pub const GENESIS_MS: i64 = 1_795_000_000_000;
pub const CHAIN_ID: &str = "xinlian-fuzz";
pub const VALIDATORS: usize = 4;
const BLOCK_GAP_MS: i64 = 1_000;

/// A key from a fixed seed: `tag` 1 node keys, 2 the registrar, 3 agency keys, 4 the
/// inspector, 5 enterprise keys, 6 rotated enterprise keys.
pub fn key(tag: u8, i: usize) -> SigningKey {
    let mut seed = [tag; 32];
    seed[0] = i as u8;
    SigningKey::from_bytes(&seed)
}

/// Validator `i`'s node key. Deriving a key computes its public point, which cost the
/// replica target half its time, so the validators' keys are derived once per process.
pub fn node_key(i: usize) -> SigningKey {
    static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| (0..VALIDATORS).map(|i| key(1, i)).collect());
    keys.get(i).cloned().unwrap_or_else(|| key(1, i))
}

pub fn registrar() -> SigningKey {
    key(2, 0)
}

pub fn inspector() -> SigningKey {
    key(4, 0)
}

fn member(id: &str, roles: Vec<Role>, signing: &SigningKey, node: Option<&SigningKey>) -> Member {
    Member {
        id: id.into(),
        name: id.into(),
        region: "310000".into(),
        voting_power: u64::from(roles.contains(&Role::Validator)),
        roles,
        node_key: node.map(public_key),
        signing_key: public_key(signing),
    }
}

/// The fixture's genesis, built and validated once per process.
pub fn genesis() -> &'static Genesis {
    static G: OnceLock<Genesis> = OnceLock::new();
    G.get_or_init(make_genesis)
}

fn make_genesis() -> Genesis {
    let mut members: Vec<Member> = (0..VALIDATORS)
        .map(|i| {
            member(
                &format!("v{i}"),
                vec![Role::Validator],
                &key(3, i),
                Some(&node_key(i)),
            )
        })
        .collect();
    members.push(member(
        "registrar",
        vec![Role::Registrar],
        &registrar(),
        None,
    ));
    members.push(member(
        "food-agency",
        vec![Role::TraceAuthority("food".into())],
        &inspector(),
        None,
    ));
    let g = Genesis {
        chain_id: CHAIN_ID.into(),
        genesis_time_ms: GENESIS_MS,
        policy: Policy::default(),
        members,
    };
    // The same rules as any genesis file.
    g.to_file()
        .validate()
        .expect("the fixture genesis is valid")
}

/// Committed state as a map, snapshotted after every height.
#[derive(Clone, Default)]
pub struct MapState(pub BTreeMap<Vec<u8>, Vec<u8>>);

impl StateRead for MapState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.0.get(key).cloned())
    }
}

/// An enterprise of the fixture: its USCC and the key it signs with now.
pub struct Enterprise {
    pub uscc: Uscc,
    pub key: SigningKey,
}

pub struct Fixture {
    pub consortium: Arc<Consortium>,
    pub genesis: Genesis,
    /// Block and certificate of height `h` at `blocks[h - 1]`.
    pub blocks: Vec<(Block, Certificate)>,
    /// State and tip after height `h` at `[h]` (`[0]` is genesis).
    pub states: Vec<MapState>,
    pub tips: Vec<Tip>,
    /// Every record, by ledger index, and the height that appended it.
    pub records: Vec<EncodedRecord>,
    pub record_height: Vec<u64>,
    /// Valid records that are not on the chain (fresh registrations, for relaying).
    pub pending: Vec<EncodedRecord>,
    /// A bundle per record, proven against the newest header.
    pub bundles: Vec<Bundle>,
    /// What a light client must conclude from each record's proof, by id.
    pub verified: BTreeMap<RecordId, VerifiedRecord>,
    /// Provenance answers (one root, each direction) against the newest header.
    pub answers: Vec<ProvenanceProof>,
    /// Every batch as a light client must verify it, against the newest header.
    pub batches: BTreeMap<String, VerifiedBatch>,
    /// Each enterprise's credit answer against the newest header, and (same order)
    /// what a light client must conclude from it; then an unregistered USCC's answer.
    pub credits: Vec<CreditProof>,
    pub credit_truth: Vec<VerifiedCredit>,
}

/// The fixture, built once per process.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(build)
}

struct Builder {
    c: Arc<Consortium>,
    state: MapState,
    tip: Tip,
    nonce: u64,
    fx: Fixture,
}

fn at(ms: i64) -> EventTime {
    EventTime {
        unix_ms: ms,
        offset_minutes: 480,
    }
}

fn kgm(amount: u64) -> Quantity {
    Quantity {
        amount: amount.into(),
        uom: "KGM".into(),
    }
}

impl Builder {
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

    fn now(&self) -> i64 {
        self.tip.time_ms + BLOCK_GAP_MS
    }

    /// Builds, certifies and commits one block of exactly `records`.
    fn block(&mut self, records: Vec<EncodedRecord>) {
        let height = self.tip.height + 1;
        let proposer = public_key(&node_key(height as usize % VALIDATORS));
        let (ex, rejected) = build_block(
            &self.state,
            &self.c,
            &self.tip,
            proposer,
            self.now(),
            &records,
        )
        .expect("map state never fails");
        assert!(rejected.is_empty(), "fixture record refused: {rejected:?}");
        let hash = ex.header.hash();
        let signatures = (0..VALIDATORS)
            .map(|i| {
                let p = Precommit {
                    chain: self.c.chain,
                    height,
                    round: 0,
                    block: hash,
                    validator: public_key(&node_key(i)),
                };
                CommitSignature {
                    validator: i as u16,
                    signature: p.sign(&node_key(i)),
                }
            })
            .collect();
        let cert = Certificate {
            height,
            round: 0,
            block: hash,
            signatures,
        };
        for (k, v) in &ex.writes {
            match v {
                Some(v) => self.state.0.insert(k.clone(), v.clone()),
                None => self.state.0.remove(k),
            };
        }
        for r in &ex.records {
            self.fx.records.push(r.clone());
            self.fx.record_height.push(height);
        }
        self.fx.blocks.push((ex.block(), cert));
        self.tip = ex.tip.clone();
        self.fx.states.push(self.state.clone());
        self.fx.tips.push(self.tip.clone());
    }
}

fn empty_fixture(c: &Arc<Consortium>) -> Fixture {
    Fixture {
        consortium: c.clone(),
        genesis: c.genesis.clone(),
        blocks: Vec::new(),
        states: vec![MapState::default()],
        tips: vec![Tip::genesis(c)],
        records: Vec::new(),
        record_height: Vec::new(),
        pending: Vec::new(),
        bundles: Vec::new(),
        verified: BTreeMap::new(),
        answers: Vec::new(),
        batches: BTreeMap::new(),
        credits: Vec::new(),
        credit_truth: Vec::new(),
    }
}

fn uscc(n: u32) -> Uscc {
    Uscc::with_check(&format!("91310000{n:09}")).expect("a valid USCC payload")
}

fn registration(b: &mut Builder, n: u32, key: &SigningKey) -> EncodedRecord {
    let registrar = registrar();
    let u = uscc(n);
    let possession = prove_possession(key, &b.c.chain, KeyHolder::Enterprise(u.as_str()));
    b.sign(
        &registrar,
        RegisterEntity {
            operator: None,
            uscc: u,
            name: format!("enterprise {n}"),
            key: public_key(key),
            check_override: None,
            possession,
        },
    )
}

// Long: the fixture's story, one block after another, reads best in one place.
fn build() -> Fixture {
    let c = Arc::new(Consortium::new(genesis().clone()));
    let mut b = Builder {
        state: MapState::default(),
        tip: Tip::genesis(&c),
        nonce: 0,
        fx: empty_fixture(&c),
        c,
    };
    let farm_old = key(5, 0);
    let [farm, processor, retailer] = [0u32, 1, 2].map(|n| Enterprise {
        uscc: uscc(n),
        key: key(if n == 0 { 6 } else { 5 }, n as usize),
    });
    // 1: registrations.
    let regs = vec![
        registration(&mut b, 0, &farm_old),
        registration(&mut b, 1, &processor.key),
        registration(&mut b, 2, &retailer.key),
    ];
    b.block(regs);
    // 2: the farm rotates its key, so its proofs cite a chain of two bindings.
    let rot = b.sign(
        &farm_old,
        RotateEntityKey {
            uscc: farm.uscc.clone(),
            new_key: public_key(&farm.key),
            possession: prove_possession(
                &farm.key,
                &b.c.chain,
                KeyHolder::Enterprise(farm.uscc.as_str()),
            ),
        },
    );
    b.block(vec![rot]);
    // 3: two harvests; half of one shipped to the processor.
    let t = b.now() - 500;
    let product = Product {
        name: "rice".into(),
        gtin: None,
        drug_code: None,
    };
    let commission = |batch: &str| Commission {
        batch: batch.into(),
        domain: "food".into(),
        product: product.clone(),
        lot: format!("lot-{batch}"),
        quantity: kgm(100),
        origin: "urn:xinlian:loc:farm".into(),
        time: at(t),
    };
    let c1 = b.sign(&farm.key, commission("farm-1"));
    let c2 = b.sign(&farm.key, commission("farm-2"));
    let ship = b.sign(
        &farm.key,
        Ship {
            batch: "farm-1".into(),
            quantity: kgm(50),
            to: processor.uscc.clone().into(),
            from_location: "urn:xinlian:loc:farm".into(),
            to_location: "urn:xinlian:loc:mill".into(),
            time: at(t),
        },
    );
    let ship_id = ship.id();
    b.block(vec![c1, c2, ship]);
    // 4: received, inspected, milled.
    let t = b.now() - 500;
    let recv = b.sign(
        &processor.key,
        Receive {
            shipment: ship_id,
            location: "urn:xinlian:loc:mill".into(),
            time: at(t),
        },
    );
    let inspect = b.sign(
        &inspector(),
        Inspect {
            batch: "farm-1".into(),
            result: InspectionResult::Pass,
            standard: "GB 2763-2021".into(),
            report: Some(Hash32([9; 32])),
            location: "urn:xinlian:loc:mill".into(),
            time: at(t),
        },
    );
    let mill = b.sign(
        &processor.key,
        Transform {
            inputs: vec![BatchAmount {
                batch: "farm-1".into(),
                quantity: kgm(50),
            }],
            outputs: vec![NewBatch {
                batch: "flour-1".into(),
                domain: "food".into(),
                product: Product {
                    name: "rice flour".into(),
                    gtin: None,
                    drug_code: None,
                },
                lot: "lot-flour-1".into(),
                quantity: kgm(40),
            }],
            location: "urn:xinlian:loc:mill".into(),
            time: at(t),
        },
    );
    b.block(vec![recv, inspect, mill]);
    // 5: to the retailer, part sold; the other harvest recalled.
    let t = b.now() - 500;
    let ship2 = b.sign(
        &processor.key,
        Ship {
            batch: "flour-1".into(),
            quantity: kgm(30),
            to: retailer.uscc.clone().into(),
            from_location: "urn:xinlian:loc:mill".into(),
            to_location: "urn:xinlian:loc:shop".into(),
            time: at(t),
        },
    );
    let recv2 = b.sign(
        &retailer.key,
        Receive {
            shipment: ship2.id(),
            location: "urn:xinlian:loc:shop".into(),
            time: at(t),
        },
    );
    let sell = b.sign(
        &retailer.key,
        Sell {
            batch: "flour-1".into(),
            quantity: kgm(10),
            kind: SaleKind::RetailSold,
            location: "urn:xinlian:loc:shop".into(),
            time: at(t),
        },
    );
    let recall = b.sign(
        &inspector(),
        Recall {
            batch: "farm-2".into(),
            reason: "residue above limit".into(),
            time: at(t),
        },
    );
    b.block(vec![ship2, recv2, sell, recall]);
    b.fx.pending = (10..14)
        .map(|n| registration(&mut b, n, &key(7, n as usize)))
        .collect();
    let mut fx = b.fx;
    prove_all(&mut fx);
    fx
}

impl Fixture {
    pub fn chain(&self) -> Hash32 {
        self.consortium.chain
    }

    pub fn newest(&self) -> Checkpoint {
        let (block, certificate) = self.blocks.last().expect("the fixture has blocks");
        Checkpoint {
            header: block.header.clone(),
            certificate: certificate.clone(),
        }
    }

    fn leaves(&self) -> Vec<Hash32> {
        self.records.iter().map(|r| leaf_hash(r.bytes())).collect()
    }

    fn entry(&self, index: u64, size: u64) -> LedgerEntry {
        let leaves = self.leaves();
        LedgerEntry {
            index,
            record: HexBytes(self.records[index as usize].bytes().to_vec()),
            inclusion: inclusion_proof(&Leaves(&leaves), index, size).expect("in range"),
        }
    }

    fn index_of(&self, id: &RecordId) -> u64 {
        self.records
            .iter()
            .position(|r| r.id() == *id)
            .expect("a fixture record") as u64
    }

    fn state_value<T: serde::de::DeserializeOwned + serde::Serialize>(
        &self,
        k: &[u8],
    ) -> Option<T> {
        let state = self.states.last().expect("state after the newest block");
        state
            .0
            .get(k)
            .map(|b| canonical::decode(b, usize::MAX).expect("state decodes"))
    }

    /// The bindings behind `signer`, newest first (as `proof_assembly::key_bindings`).
    fn key_bindings(&self, signer: &PublicKey, size: u64) -> Vec<LedgerEntry> {
        let mut out = Vec::new();
        let mut signer = *signer;
        while let Some(kb) = self.state_value::<st::KeyBinding>(&key::key_binding(&signer)) {
            let i = self.index_of(&kb.bound_by);
            out.push(self.entry(i, size));
            signer = self.records[i as usize].record().envelope.signer;
        }
        out
    }

    fn record_proof(&self, index: u64) -> RecordProof {
        let checkpoint = self.newest();
        let size = checkpoint.header.ledger_size;
        let signer = self.records[index as usize].record().envelope.signer;
        RecordProof {
            entry: self.entry(index, size),
            key_bindings: self.key_bindings(&signer, size),
            checkpoint,
        }
    }

    pub fn batch_names(&self) -> Vec<String> {
        let mut out = BTreeSet::new();
        for r in &self.records {
            match &r.record().envelope.body {
                Body::Commission(c) => {
                    out.insert(c.batch.clone());
                }
                Body::Transform(t) => out.extend(t.outputs.iter().map(|o| o.batch.clone())),
                _ => {}
            }
        }
        out.into_iter().collect()
    }

    fn children(&self, batch: &str) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.records {
            if let Body::Transform(t) = &r.record().envelope.body
                && t.inputs.iter().any(|i| i.batch == batch)
            {
                out.extend(t.outputs.iter().map(|o| o.batch.clone()));
            }
        }
        out
    }

    /// The answer a node gives for `root` in `direction` (as `proof_assembly::provenance`).
    pub fn provenance(&self, root: &str, direction: Direction) -> ProvenanceProof {
        let checkpoint = self.newest();
        let size = checkpoint.header.ledger_size;
        let state = self.states.last().expect("state after the newest block");
        let index = index::Committed(state, Index::Batch);
        let mut queue = std::collections::VecDeque::from([root.to_string()]);
        let mut seen = BTreeSet::from([root.to_string()]);
        let mut batches = Vec::new();
        let mut records = BTreeSet::new();
        while let Some(name) = queue.pop_front() {
            let state_bytes = state.0[&key::batch(&name)].clone();
            let bs: st::BatchState = canonical::decode(&state_bytes, usize::MAX).expect("state");
            let events: Vec<u64> = (0..bs.events)
                .map(|seq| {
                    let id: RecordId = self
                        .state_value(&key::batch_event(&name, seq))
                        .expect("an event of the batch");
                    self.index_of(&id)
                })
                .collect();
            records.extend(events.iter().copied());
            let mut next = Vec::new();
            if direction.up() {
                next.extend(bs.parents.iter().cloned());
            }
            if direction.down() {
                next.extend(self.children(&name));
            }
            for n in next {
                if seen.insert(n.clone()) {
                    queue.push_back(n);
                }
            }
            batches.push(BatchEvidence {
                index_proof: smt::prove(&index, &st::BatchState::index_key(&name))
                    .expect("map state never fails"),
                batch: name,
                state: HexBytes(state_bytes),
                events,
            });
        }
        let entries: Vec<LedgerEntry> = records.iter().map(|&i| self.entry(i, size)).collect();
        let mut keys = BTreeSet::new();
        for &i in &records {
            let signer = self.records[i as usize].record().envelope.signer;
            if self
                .state_value::<st::KeyBinding>(&key::key_binding(&signer))
                .is_some()
            {
                keys.insert(signer);
            }
        }
        let signers = keys
            .into_iter()
            .map(|key| SignerBindings {
                bindings: self.key_bindings(&key, size),
                key,
            })
            .collect();
        ProvenanceProof {
            checkpoint,
            roots: vec![root.to_string()],
            direction,
            batches,
            missing: Vec::new(),
            records: entries,
            signers,
        }
    }
}

impl Fixture {
    /// The credit answer a node gives for `u` (as `proof_assembly::credit`).
    pub fn credit(&self, u: &Uscc) -> CreditProof {
        let checkpoint = self.newest();
        let size = checkpoint.header.ledger_size;
        let state = self.states.last().expect("state after the newest block");
        let prefix = key::credit_records_prefix(u);
        let records = state
            .0
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| {
                let at = k.len() - 8;
                self.entry(u64::from_be_bytes(k[at..].try_into().expect("8 bytes")), size)
            })
            .collect();
        CreditProof {
            checkpoint,
            uscc: u.clone(),
            state: state.0.get(&key::credit(u)).cloned().map(HexBytes),
            index_proof: smt::prove(&index::Committed(state, Index::Credit), &st::CreditState::index_key(u))
                .expect("map state never fails"),
            records,
        }
    }

    /// Every registered enterprise's USCC, from the credit states.
    pub fn credit_usccs(&self) -> Vec<Uscc> {
        let state = self.states.last().expect("state after the newest block");
        state
            .0
            .range(vec![key::CREDIT]..vec![key::CREDIT + 1])
            .map(|(_, v)| {
                canonical::decode::<st::CreditState>(v, usize::MAX)
                    .expect("state decodes")
                    .uscc
            })
            .collect()
    }
}

/// Every record's bundle and every batch's answer, each checked here once: the fixture
/// is only useful if its genuine answers verify.
fn prove_all(fx: &mut Fixture) {
    for i in 0..fx.records.len() as u64 {
        let bundle = Bundle {
            format: BUNDLE_FORMAT.into(),
            chain: fx.chain(),
            roster_changes: Vec::new(),
            proof: fx.record_proof(i),
        };
        let v = LightClient::verify_bundle(fx.genesis.clone(), &bundle)
            .unwrap_or_else(|e| panic!("the genuine bundle of record {i} verifies: {e}"));
        fx.verified.insert(v.id, v);
        fx.bundles.push(bundle);
    }
    let client = LightClient::new(fx.genesis.clone());
    for root in fx.batch_names() {
        for direction in [Direction::Upstream, Direction::Downstream, Direction::Both] {
            let answer = fx.provenance(&root, direction);
            let p: Provenance = client
                .verify_provenance(&answer)
                .unwrap_or_else(|e| panic!("the genuine answer for {root} verifies: {e}"));
            assert!(p.is_complete());
            for (name, vb) in p.batches {
                fx.batches.insert(name, vb);
            }
            fx.answers.push(answer);
        }
    }
    for u in fx.credit_usccs() {
        let answer = fx.credit(&u);
        let v = client
            .verify_credit(&u, &answer)
            .unwrap_or_else(|e| panic!("the genuine credit answer of {u} verifies: {e}"));
        fx.credits.push(answer);
        fx.credit_truth.push(v);
    }
    let nobody = uscc(999_999);
    let absent = fx.credit(&nobody);
    assert!(matches!(
        client.verify_credit(&nobody, &absent),
        Err(CreditError::NotRegistered { .. })
    ));
    fx.credits.push(absent);
}
