//! The whole store against the in-memory ledger the simulator uses (`MemLedger`), with
//! reboots: random sequences of block commits (registrations executed by the
//! proposer's path and certified), replays of committed records, write-ahead-log
//! appends, reopenings, and torn writes past the committed ends of the history
//! segments before a reopening (what a crash in the middle of a commit leaves). After
//! every step the store and the model agree on the tip, every block and certificate,
//! the derived state, the log of the next height, and where each record is.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use xinlian_client::block::{Block, Certificate, CommitSignature, Header, Precommit};
use xinlian_client::crypto::{KeyHolder, prove_possession};
use xinlian_client::ids::Uscc;
use xinlian_client::record::{EncodedRecord, RegisterEntity};
use xinlian_client::signer::RecordSigner;
use xinlian_core::chain::{Tip, build_block};
use xinlian_core::consensus::ledger::{Durability, Ledger, MemLedger};
use xinlian_core::consensus::wire::WalEntry;
use xinlian_core::execute::Consortium;
use xinlian_core::overlay::StateRead;
use xinlian_genesis::keys::{SigningKey, public_key};
use xinlian_genesis::{Genesis, Member, Policy, Role};
use xinlian_store::Store;

#[derive(Clone, Debug)]
enum Op {
    /// A block of this many new registrations.
    Commit(usize),
    /// A block offering an already committed record again (by its number modulo the
    /// records so far) beside one new registration: the replay is refused.
    Replay(usize),
    /// Consecutive blocks of these many registrations, each executed over the writes
    /// of those before it, committed in one write (as synced blocks are).
    CommitMany(Vec<usize>),
    /// A write-ahead-log entry for the next height.
    Wal { durable: bool, kind: u8 },
    /// The store closed and opened again.
    Reopen,
    /// Bytes past the committed end of every history log, as a commit cut short by a
    /// crash leaves them, then a reopening (which cuts them).
    TornReopen(Vec<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..6).prop_map(Op::Commit),
        1 => any::<usize>().prop_map(Op::Replay),
        2 => proptest::collection::vec(0usize..4, 1..5).prop_map(Op::CommitMany),
        3 => (any::<bool>(), any::<u8>()).prop_map(|(durable, kind)| Op::Wal { durable, kind }),
        2 => Just(Op::Reopen),
        2 => proptest::collection::vec(any::<u8>(), 1..300).prop_map(Op::TornReopen),
    ]
}

struct Keys {
    /// The validator's node key (it signs precommits and proposes).
    validator: SigningKey,
    registrar: SigningKey,
}

fn consortium(keys: &Keys) -> Consortium {
    let genesis = Genesis {
        chain_id: "store-model".into(),
        genesis_time_ms: 1_795_000_000_000,
        policy: Policy::default(),
        members: vec![
            Member {
                id: "v0".into(),
                name: "Validator 0".into(),
                region: "310000".into(),
                roles: vec![Role::Validator],
                voting_power: 1,
                node_key: Some(public_key(&keys.validator)),
                signing_key: public_key(&SigningKey::from_bytes(&[1; 32])),
            },
            Member {
                id: "market".into(),
                name: "Market regulator".into(),
                region: "310000".into(),
                roles: vec![Role::Registrar],
                voting_power: 0,
                node_key: None,
                signing_key: public_key(&keys.registrar),
            },
        ],
    };
    Consortium::new(genesis.to_file().validate().expect("valid genesis"))
}

fn registration(c: &Consortium, keys: &Keys, n: usize) -> EncodedRecord {
    // A key of its own, none of the members' (those are all-equal bytes).
    let mut seed = [0xE0; 32];
    seed[..8].copy_from_slice(&(n as u64).to_be_bytes());
    let key = SigningKey::from_bytes(&seed);
    let uscc = Uscc::with_check(&format!("91319{n:012}")).expect("digits");
    let possession = prove_possession(&key, &c.chain, KeyHolder::Enterprise(uscc.as_str()));
    let registrar = RecordSigner {
        key: keys.registrar.clone(),
        chain: c.chain,
    };
    EncodedRecord::new(registrar.sign(RegisterEntity {
        operator: None,
        uscc,
        name: format!("enterprise {n}"),
        key: public_key(&key),
        check_override: None,
        possession,
    }))
}

/// The certificate of `header` by the one validator's precommit in `round`.
fn certify_in_round(c: &Consortium, keys: &Keys, header: &Header, round: u32) -> Certificate {
    let block = header.hash();
    let height = header.height;
    Certificate {
        height,
        round,
        block,
        signatures: vec![CommitSignature {
            validator: 0,
            signature: Precommit {
                chain: c.chain,
                height,
                round,
                block,
                validator: public_key(&keys.validator),
            }
            .sign(&keys.validator),
        }],
    }
}

/// Appends `bytes` to the newest segment of each history log (past its committed end).
fn tear(root: &Path, bytes: &[u8]) {
    for log in ["records", "blocks", "nodes"] {
        let dir = root.join("history").join(log);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let newest = entries.filter_map(|e| e.ok()).map(|e| e.path()).max();
        if let Some(file) = newest {
            let mut f = std::fs::OpenOptions::new().append(true).open(file).unwrap();
            f.write_all(bytes).unwrap();
        }
    }
}

/// State as it will be once the writes of blocks executed but not yet committed are.
struct Pending<'a> {
    base: &'a Store,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl StateRead for Pending<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, xinlian_core::overlay::StateError> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }
}

struct Run {
    keys: Keys,
    c: Consortium,
    root: std::path::PathBuf,
    store: Option<Store>,
    tip: Tip,
    model: MemLedger,
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    committed: Vec<EncodedRecord>,
    registered: usize,
    /// The round the next blocks are certified in.
    round: u32,
}

impl Run {
    fn new(dir: &Path) -> Run {
        let keys = Keys {
            validator: SigningKey::from_bytes(&[3; 32]),
            registrar: SigningKey::from_bytes(&[4; 32]),
        };
        let c = consortium(&keys);
        let root = dir.join("ledger");
        let (store, tip) = Store::open(&root, &c).unwrap();
        Run {
            keys,
            c,
            root,
            store: Some(store),
            tip,
            model: MemLedger::new(),
            state: BTreeMap::new(),
            committed: Vec::new(),
            registered: 0,
            round: 0,
        }
    }

    fn store(&self) -> &Store {
        self.store.as_ref().expect("open")
    }

    fn commit(&mut self, records: Vec<EncodedRecord>, replayed: Option<&EncodedRecord>) {
        let mut offered = records.clone();
        offered.extend(replayed.cloned());
        let proposer = public_key(&self.keys.validator);
        let time_ms = self.tip.time_ms + 500;
        let (ex, rejected) = build_block(
            self.store(),
            &self.c,
            &self.tip,
            proposer,
            time_ms,
            &offered,
        )
        .unwrap();
        // Only the replay is refused, by the store's replay index.
        if rejected
            .iter()
            .any(|(id, _)| Some(*id) != replayed.map(|r| r.id()))
        {
            panic!("refused: {rejected:?}");
        }
        assert_eq!(
            rejected.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            replayed.map(|r| r.id()).into_iter().collect::<Vec<_>>()
        );
        let cert = certify_in_round(&self.c, &self.keys, &ex.header, self.round);
        self.store().commit(&ex, &cert).unwrap();
        self.model.commit(&ex, &cert).unwrap();
        for (k, v) in &ex.writes {
            match v {
                Some(v) => self.state.insert(k.clone(), v.clone()),
                None => self.state.remove(k),
            };
        }
        self.committed.extend(ex.records.iter().cloned());
        self.tip = ex.tip;
    }

    fn commit_many(&mut self, sizes: &[usize]) {
        let store = self.store.as_ref().expect("open");
        let mut overlay = Pending {
            base: store,
            writes: BTreeMap::new(),
        };
        let mut tip = self.tip.clone();
        let mut blocks = Vec::new();
        for n in sizes {
            let records: Vec<EncodedRecord> = (0..*n)
                .map(|i| registration(&self.c, &self.keys, self.registered + i))
                .collect();
            self.registered += n;
            let proposer = public_key(&self.keys.validator);
            let (ex, rejected) = build_block(
                &overlay,
                &self.c,
                &tip,
                proposer,
                tip.time_ms + 500,
                &records,
            )
            .unwrap();
            assert!(rejected.is_empty(), "{rejected:?}");
            overlay.writes.extend(ex.writes.clone());
            tip = ex.tip.clone();
            let cert = certify_in_round(&self.c, &self.keys, &ex.header, self.round);
            blocks.push((ex, cert));
        }
        let refs: Vec<_> = blocks.iter().map(|(e, c)| (e, c)).collect();
        store.commit_blocks(&refs).unwrap();
        self.model.commit_many(&blocks).unwrap();
        for (ex, _) in blocks {
            for (k, v) in &ex.writes {
                match v {
                    Some(v) => self.state.insert(k.clone(), v.clone()),
                    None => self.state.remove(k),
                };
            }
            self.committed.extend(ex.records.iter().cloned());
        }
        self.tip = tip;
    }

    fn reopen(&mut self) {
        drop(self.store.take());
        let (store, tip) = Store::open(&self.root, &self.c).unwrap();
        assert_eq!(tip, self.tip, "the tip after reopening");
        self.store = Some(store);
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Commit(n) => {
                let records = (0..*n)
                    .map(|i| registration(&self.c, &self.keys, self.registered + i))
                    .collect();
                self.registered += n;
                self.commit(records, None);
            }
            Op::Replay(i) => {
                if self.committed.is_empty() {
                    return;
                }
                let old = self.committed[i % self.committed.len()].clone();
                let new = registration(&self.c, &self.keys, self.registered);
                self.registered += 1;
                self.commit(vec![new], Some(&old));
            }
            Op::CommitMany(sizes) => self.commit_many(sizes),
            Op::Wal { durable, kind } => {
                let entry = WalEntry::Timeout {
                    round: Some(u32::from(*kind % 4)),
                    kind: *kind,
                };
                let d = if *durable {
                    Durability::Synced
                } else {
                    Durability::Buffered
                };
                let h = self.tip.height + 1;
                self.store().wal_append(h, &entry, d).unwrap();
                self.model.wal_append(h, &entry, d).unwrap();
            }
            Op::Reopen => self.reopen(),
            Op::TornReopen(bytes) => {
                drop(self.store.take());
                tear(&self.root, bytes);
                self.reopen();
            }
        }
    }

    fn agree(&self) {
        let store = self.store();
        assert_eq!(store.tip().unwrap(), self.tip);
        for h in 1..=self.tip.height {
            let ours = store.block_and_certificate(h).unwrap();
            let model = self.model.block_and_certificate(h).unwrap();
            assert_eq!(
                ours.map(|(b, c)| (b.header.hash(), b.records.len(), c)),
                model.map(|(b, c)| (b.header.hash(), b.records.len(), c)),
                "block {h}"
            );
        }
        assert!(
            store
                .block_and_certificate(self.tip.height + 1)
                .unwrap()
                .is_none()
        );
        assert_eq!(store.state_all().unwrap(), self.state, "derived state");
        for (key, value) in &self.state {
            assert_eq!(self.model.get(key).unwrap().as_ref(), Some(value));
        }
        let next = self.tip.height + 1;
        assert_eq!(
            format!("{:?}", store.wal(next).unwrap()),
            format!("{:?}", self.model.wal(next).unwrap()),
            "write-ahead log of height {next}"
        );
        for (index, rec) in self.committed.iter().enumerate() {
            let (_, at) = store.locate(&rec.id()).unwrap().expect("located");
            assert_eq!(at, index as u64, "ledger index of record {index}");
            assert_eq!(
                store.record_bytes_at(index as u64).unwrap().as_deref(),
                Some(rec.bytes())
            );
        }
        assert!(
            store
                .record_bytes_at(self.committed.len() as u64)
                .unwrap()
                .is_none()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_store_agrees_with_the_in_memory_ledger_across_reboots(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut run = Run::new(dir.path());
        for op in &ops {
            run.apply(op);
            run.agree();
        }
    }
}

fn flip_byte(file: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], at).unwrap();
}

/// The repair path a node takes with a peer's copy of a damaged block: a copy that is
/// not the block (another record in its place, another header) is refused and changes
/// nothing; the true copy writes back exactly the damaged records, after which the
/// store reads, reopens and agrees with the model as before the damage.
#[test]
fn a_damaged_record_is_repaired_from_a_true_copy_and_a_false_copy_changes_nothing() {
    use xinlian_core::consensus::ledger::RepairOutcome;
    use xinlian_store::BlockHealth;
    let dir = tempfile::tempdir().unwrap();
    let mut run = Run::new(dir.path());
    for n in [3, 4, 2] {
        run.apply(&Op::Commit(n));
    }
    let (true_copy, true_cert) = run.model.block_and_certificate(2).unwrap().unwrap();
    // Records 3 and 6 are block 2's first and last (blocks of 3, 4, 2).
    for index in [3, 6] {
        let (file, offset, len) = run.store().record_file_span(index).unwrap().unwrap();
        flip_byte(&file, offset + len / 2);
    }
    assert!(run.store().record_bytes_at(3).is_err());
    assert!(matches!(
        run.store().block_health(2).unwrap(),
        BlockHealth::RecordsDamaged(what) if what.contains("checksum mismatch")
    ));
    assert_eq!(run.store().block_health(1).unwrap(), BlockHealth::Intact);
    let damaged_bytes = |run: &Run| {
        let (file, _, _) = run.store().record_file_span(0).unwrap().unwrap();
        std::fs::read(file).unwrap()
    };
    let before = damaged_bytes(&run);

    // A lying peer's copies: a record of another block in place of one of block 2's,
    // and block 3 offered as block 2.
    let mut swapped = true_copy.clone();
    swapped.records[0] = run
        .model
        .block_and_certificate(1)
        .unwrap()
        .unwrap()
        .0
        .records[0]
        .clone();
    let mut other = run.model.block_and_certificate(3).unwrap().unwrap().0;
    other.header.height = 2;
    for lie in [&swapped, &other] {
        assert!(matches!(
            run.store().repair_from_copy(lie, &true_cert).unwrap(),
            RepairOutcome::Refused(_)
        ));
    }
    assert_eq!(
        damaged_bytes(&run),
        before,
        "a refused copy changes nothing"
    );

    assert_eq!(
        run.store()
            .repair_from_copy(&true_copy, &true_cert)
            .unwrap(),
        RepairOutcome::Repaired { entries: 2 }
    );
    assert_eq!(
        run.store()
            .repair_from_copy(&true_copy, &true_cert)
            .unwrap(),
        RepairOutcome::Intact
    );
    assert_eq!(run.store().block_health(2).unwrap(), BlockHealth::Intact);
    run.agree();
    run.reopen();
    run.agree();
}

/// A damaged block entry (header and certificate) is written again from a peer's copy
/// whose header hashes to what our chain names for it (the next header's parent, or
/// the tip's hash) and whose certificate is for that header: here one of another round,
/// as a peer may hold, shorter than ours (so zero-padded) or as long. A copy with
/// another header or a certificate of another block is refused, one whose certificate
/// is longer than the place of ours does not fit, and an entry whose successor fails
/// its checksum too waits for that one: none changes a byte. The store opens with
/// damaged entries, the tip's among them.
#[test]
fn a_damaged_block_entry_is_written_again_from_a_copy_our_chain_names() {
    use xinlian_core::consensus::ledger::RepairOutcome;
    use xinlian_store::BlockHealth;
    let dir = tempfile::tempdir().unwrap();
    let mut run = Run::new(dir.path());
    // Blocks 1 and 2 certified in round 0; block 3, the tip, in round 200 (a varint
    // of two bytes).
    for (n, round) in [(3, 0), (4, 0), (2, 200)] {
        run.round = round;
        run.apply(&Op::Commit(n));
    }
    let copy = |run: &Run, h: u64| run.model.block_and_certificate(h).unwrap().unwrap();
    let blocks_file = run.store().block_file_span(2).unwrap().unwrap().0;
    for h in [2, 3] {
        let (file, offset, len) = run.store().block_file_span(h).unwrap().unwrap();
        flip_byte(&file, offset + len / 2);
        assert!(matches!(
            run.store().block_health(h).unwrap(),
            BlockHealth::EntryDamaged(what) if what.contains("checksum mismatch")
        ));
    }
    run.reopen();
    let before = std::fs::read(&blocks_file).unwrap();
    let (block2, _) = copy(&run, 2);
    let (block3, _) = copy(&run, 3);
    let theirs =
        |run: &Run, b: &Block, round| certify_in_round(&run.c, &run.keys, &b.header, round);
    let repair = |run: &Run, b: &Block, round| {
        run.store()
            .repair_from_copy(b, &theirs(run, b, round))
            .unwrap()
    };

    // Block 2's successor names its hash, but fails its checksum too: that one first.
    assert_eq!(repair(&run, &block2, 1), RepairOutcome::Waits { on: 3 });
    // Lies about the tip: another header, a certificate of another block.
    let mut other = block3.clone();
    other.header.time_ms += 1;
    assert!(matches!(repair(&run, &other, 1), RepairOutcome::Refused(_)));
    let wrong_block = run
        .store()
        .repair_from_copy(&block3, &theirs(&run, &block2, 1))
        .unwrap();
    assert!(
        matches!(wrong_block, RepairOutcome::Refused(_)),
        "{wrong_block:?}"
    );
    assert_eq!(
        std::fs::read(&blocks_file).unwrap(),
        before,
        "nothing written"
    );

    // The tip (its hash is the tip's) with a certificate of round 0: a byte shorter
    // than ours, so padded.
    let mended = |run: &mut Run, h: u64, block: &Block, round| {
        let cert = theirs(run, block, round);
        assert_eq!(
            run.store().repair_from_copy(block, &cert).unwrap(),
            RepairOutcome::Repaired { entries: 1 }
        );
        assert_eq!(run.store().block_health(h).unwrap(), BlockHealth::Intact);
        assert_eq!(run.store().certificate(h).unwrap(), Some(cert.clone()));
        // The model takes the same certificate, so the two agree on it below.
        run.model.damage_block_entry(h);
        run.model.repair(block, &cert).unwrap();
    };
    mended(&mut run, 3, &block3, 0);
    let (_, _, len) = run.store().block_file_span(3).unwrap().unwrap();
    let unpadded = xinlian_genesis::canonical::encode(&(&block3.header, &theirs(&run, &block3, 0)));
    assert_eq!(len, unpadded.len() as u64 + 1, "one byte of padding");
    // Block 2, named by block 3 now: a lie about its header, then a certificate a byte
    // longer than ours (round 200), then one as long (round 1).
    let mut other = block2.clone();
    other.header.records_count += 1;
    assert!(matches!(repair(&run, &other, 1), RepairOutcome::Refused(_)));
    assert!(matches!(
        repair(&run, &block2, 200),
        RepairOutcome::Unfit(_)
    ));
    mended(&mut run, 2, &block2, 1);
    assert_eq!(repair(&run, &block2, 1), RepairOutcome::Intact);
    run.agree();
    run.reopen();
    run.agree();
    run.round = 0;
    run.apply(&Op::Commit(2));
    run.agree();
}

/// What an engine can lose without an error of its own (fjall cuts a damaged journal
/// at the damage and replays the later ones): a block's writes below the tip, or the
/// write-ahead-log entries of the height this node signed at. Each is refused at open
/// with what is missing; losing only entries no signature made durable is not.
#[test]
fn an_engine_that_lost_a_block_below_its_tip_or_a_signed_log_entry_is_refused() {
    use xinlian_store::kv::{Batch, Kv, Sync};
    let dir = tempfile::tempdir().unwrap();
    let mut run = Run::new(dir.path());
    for n in [2, 1, 2] {
        run.apply(&Op::Commit(n));
    }
    let timeout = |kind: u8| WalEntry::Timeout {
        round: Some(0),
        kind,
    };
    for (kind, d) in [
        (0, Durability::Buffered),
        (1, Durability::Synced),
        (2, Durability::Buffered),
        (3, Durability::Synced),
        (4, Durability::Buffered),
    ] {
        run.store().wal_append(4, &timeout(kind), d).unwrap();
    }
    drop(run.store.take());
    let kv_dir = run.root.join("kv");
    let wal_key = |seq: u32| {
        let mut key = vec![b'W'];
        key.extend_from_slice(&4u64.to_be_bytes());
        key.extend_from_slice(&seq.to_be_bytes());
        key
    };
    let block_key = |h: u64| [&[b'B'][..], &h.to_be_bytes()].concat();
    // Applies `change` to the engine, opens the store, and undoes the change.
    let opened_after = |change: &dyn Fn(&mut Batch, &Kv)| -> Result<(), String> {
        let kv = Kv::open(&kv_dir, 1 << 20).unwrap();
        let mut undo = Batch::default();
        for key in [wal_key(1), wal_key(3), wal_key(4), block_key(2)] {
            match kv.get(&key).unwrap() {
                Some(v) => undo.put(&key, &v),
                None => undo.delete(&key),
            }
        }
        let mut batch = Batch::default();
        change(&mut batch, &kv);
        kv.write(batch, Sync::Durable).unwrap();
        drop(kv);
        let opened = Store::open(&run.root, &run.c)
            .map(drop)
            .map_err(|e| e.to_string());
        let kv = Kv::open(&kv_dir, 1 << 20).unwrap();
        kv.write(undo, Sync::Durable).unwrap();
        opened
    };
    assert_eq!(opened_after(&|_, _| {}), Ok(()));
    // The entry after the last durable one was never promised: losing it is no damage.
    assert_eq!(opened_after(&|b, _| b.delete(&wal_key(4))), Ok(()));
    let refusals = [
        (
            opened_after(&|b, _| {
                b.delete(&wal_key(3));
                b.delete(&wal_key(4));
            }),
            "holds 3 entries, and entry 3 was durable",
        ),
        (
            opened_after(&|b, _| b.put(&wal_key(3), b"another entry")),
            "entry 3 of that height's log is not the one durable",
        ),
        (opened_after(&|b, _| b.delete(&wal_key(1))), "lacks entry 1"),
        (
            opened_after(&|b, _| b.delete(&block_key(2))),
            "no index entry of block 2, below its tip 3",
        ),
    ];
    for (opened, expected) in refusals {
        let err = opened.expect_err(expected);
        assert!(err.contains(expected), "{expected}: {err}");
    }
    // Undone, the store opens and agrees with the model again.
    let (store, tip) = Store::open(&run.root, &run.c).unwrap();
    assert_eq!(tip, run.tip);
    assert_eq!(store.wal(4).unwrap().len(), 5);
}

/// Merkle nodes are ours to compute again: a damaged node is computed from its
/// children where it is read (so the store opens and answers roots and proofs as
/// before), `mend_nodes` writes it back in place, and a leaf whose record is damaged
/// too waits for the record's repair, which then mends the leaf.
#[test]
fn a_damaged_merkle_node_is_computed_again_and_written_back_from_the_records() {
    use xinlian_client::merkle::Frontier;
    use xinlian_core::consensus::ledger::RepairOutcome;
    use xinlian_store::node_position;
    let dir = tempfile::tempdir().unwrap();
    let mut run = Run::new(dir.path());
    // Blocks of 3, 4 and 2 records: leaves 0-2, 3-6, 7-8.
    for n in [3, 4, 2] {
        run.apply(&Op::Commit(n));
    }
    let (true_copy, true_cert) = run.model.block_and_certificate(3).unwrap().unwrap();
    drop(run.store.take());
    let segment = run.root.join("history/nodes/00000000.seg");
    let flip_node = |level: u32, index: u64| {
        let pos = node_position(level, index).unwrap();
        flip_byte(&segment, 48 + pos * 40 + 8 + 5);
    };
    // (3, 0): leaves 0-7, completed in block 3 and on the frontier; (0, 1): a leaf of
    // block 1; (0, 8): the last leaf, whose record is damaged below as well.
    flip_node(3, 0);
    flip_node(0, 1);
    flip_node(0, 8);
    run.reopen();
    let store = run.store();
    let size = run.tip.frontier.size();
    assert_eq!(
        Frontier::from_subtrees(store, size).unwrap(),
        run.tip.frontier
    );
    let (file, offset, len) = store.record_file_span(8).unwrap().unwrap();
    flip_byte(&file, offset + len / 2);
    let found = |h: u64| -> Vec<(u32, u64)> {
        let nodes = store.damaged_nodes(h).unwrap();
        assert!(
            nodes
                .iter()
                .all(|(_, _, what)| what.contains("00000000.seg")),
            "{nodes:?}"
        );
        nodes.iter().map(|(l, i, _)| (*l, *i)).collect()
    };
    assert_eq!(found(1), vec![(0, 1)]);
    assert_eq!(found(2), Vec::<(u32, u64)>::new());
    assert_eq!(found(3), vec![(3, 0), (0, 8)]);
    assert_eq!(store.mend_nodes(1).unwrap(), 1);
    let err = store.mend_nodes(3).expect_err("leaf 8's record is damaged");
    assert!(err.is_damage(), "{err}");
    // (3, 0) came before (0, 8) in block 3's order and was written back.
    assert_eq!(found(3), vec![(0, 8)]);
    assert!(matches!(
        Ledger::repair(store, &true_copy, &true_cert).unwrap(),
        RepairOutcome::Repaired { entries: 1 }
    ));
    for h in 1..=3 {
        assert_eq!(found(h), Vec::<(u32, u64)>::new(), "block {h}");
    }
    run.reopen();
    run.agree();
}
