//! `--credit-only`: the credit index's figures, in process (no network): verifying an
//! enterprise's complete credit record of 1,000 records from a trusted header and from
//! genesis alone, against the machine's signature bound measured in the same run; and
//! the cost per record of keeping `credit_root`, beside block execution and beside what
//! one root over all derived state (every write of the block) would cost.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use serde::Serialize;
use xinlian_client::credit::CreditProof;
use xinlian_client::ids::Uscc;
use xinlian_client::merkle::{Leaves, inclusion_proof, leaf_hash};
use xinlian_client::proof::{Checkpoint, HexBytes, LedgerEntry, LightClient};
use xinlian_client::record::*;
use xinlian_client::signer::RecordSigner;
use xinlian_client::smt::{self, MemMap};
use xinlian_client::state::{CreditState, key};
use xinlian_client::when::Date;
use xinlian_core::chain::{Tip, build_block};
use xinlian_core::execute::Consortium;
use xinlian_core::index::{self, Committed, Index};
use xinlian_core::overlay::Overlay;
use xinlian_genesis::keys::{self, SigningKey};
use xinlian_genesis::scaffold::{MemberSpec, node_key_path, scaffold, signing_key_path};
use xinlian_genesis::{Hash32, Policy, canonical};

type State = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Serialize, Debug)]
pub struct Figures {
    pub records: usize,
    pub answer_bytes: usize,
    pub runs: usize,
    /// A client that already trusts the answer's header.
    pub verify_ms_p50: f64,
    /// A client holding only genesis (adds the certificate's check).
    pub verify_from_genesis_ms_p50: f64,
    /// The record signatures alone at the machine's batch-verification rate.
    pub signature_bound_ms: f64,
    pub block_records: usize,
    /// 8 commitments per enterprise per block.
    pub typical: RootCost,
    /// 1 commitment per enterprise per block.
    pub worst: RootCost,
}

#[derive(Serialize, Debug)]
pub struct RootCost {
    /// Enterprises the block's commitments are spread over.
    pub enterprises: usize,
    /// Executing the block (`build_block`, the credit index included), per record.
    pub execute_us_per_record: f64,
    /// `index::update` of the credit index for that block, per record.
    pub credit_root_us_per_record: f64,
    /// Derived-state keys the block wrote, per record.
    pub derived_writes_per_record: f64,
    /// One sparse Merkle map over every derived-state key the block wrote, per record.
    pub unified_root_us_per_record: f64,
}

struct Chain {
    c: Consortium,
    validators: Vec<(u16, SigningKey)>,
    market: RecordSigner,
    state: State,
    tip: Tip,
    records: Vec<EncodedRecord>,
    checkpoint: Option<Checkpoint>,
    nonce: u64,
}

impl Chain {
    fn new(dir: &std::path::Path) -> Result<Chain> {
        let mut specs = MemberSpec::validators(4);
        specs.push(crate::consortium::market_spec());
        let policy = Policy {
            block_bytes_max: 16 << 20,
            ..Policy::default()
        };
        let genesis = scaffold(dir, "xinlian-credit-bench", 0, policy, &specs)?;
        let chain = genesis.hash();
        let c = Consortium::new(genesis);
        let validators = (0..4)
            .map(|i| -> Result<(u16, SigningKey)> {
                let key = keys::read_pem(&node_key_path(dir, &format!("v{i}")))?;
                let index = c
                    .validators
                    .index_of(&keys::public_key(&key))
                    .context("in the set")?;
                Ok((u16::try_from(index)?, key))
            })
            .collect::<Result<_>>()?;
        let market = RecordSigner {
            key: keys::read_pem(&signing_key_path(dir, "market"))?,
            chain,
        };
        let tip = Tip::genesis(&c);
        Ok(Chain {
            c,
            validators,
            market,
            state: State::new(),
            tip,
            records: Vec::new(),
            checkpoint: None,
            nonce: 0,
        })
    }

    fn sign(&mut self, key: &SigningKey, body: impl Into<Body>) -> EncodedRecord {
        self.nonce += 1;
        let env = Envelope {
            chain: self.c.chain,
            signer: keys::public_key(key),
            nonce: self.nonce,
            body: body.into(),
        };
        EncodedRecord::new(env.sign(key))
    }

    /// Executes, certifies and applies a block; returns the execution time (s) and the
    /// block's writes.
    fn block(
        &mut self,
        records: Vec<EncodedRecord>,
    ) -> Result<(f64, xinlian_core::overlay::Writes)> {
        let n = records.len();
        let t = Instant::now();
        let (ex, rejected) = build_block(
            &self.state,
            &self.c,
            &self.tip,
            self.c.validators.validators()[0].key,
            self.tip.time_ms + 86_400_000,
            &records,
        )?;
        let secs = t.elapsed().as_secs_f64();
        ensure!(rejected.is_empty(), "refused: {:?}", rejected.first());
        ensure!(ex.records.len() == n, "every record in the block");
        let cert = crate::store_fill::certify(
            &self.validators,
            self.c.chain,
            ex.header.height,
            ex.header.hash(),
        );
        for (k, v) in &ex.writes {
            match v {
                Some(v) => self.state.insert(k.clone(), v.clone()),
                None => self.state.remove(k),
            };
        }
        self.records.extend(ex.records);
        self.tip = ex.tip;
        self.checkpoint = Some(Checkpoint {
            header: ex.header,
            certificate: cert,
        });
        Ok((secs, ex.writes))
    }

    fn register(&mut self, i: usize) -> Result<(Uscc, SigningKey, EncodedRecord)> {
        let key = keys::generate()?;
        let u = Uscc::with_check(&format!("91318{i:012}")).expect("digits");
        let possession = xinlian_client::crypto::prove_possession(
            &key,
            &self.c.chain,
            xinlian_client::crypto::KeyHolder::Enterprise(u.as_str()),
        );
        let market = self.market.key.clone();
        let r = self.sign(
            &market,
            RegisterEntity {
                operator: None,
                uscc: u.clone(),
                name: format!("bench enterprise {i}"),
                key: keys::public_key(&key),
                check_override: None,
                possession,
            },
        );
        Ok((u, key, r))
    }

    fn commitment(&mut self, u: &Uscc, key: &SigningKey, n: usize) -> EncodedRecord {
        let today = Date::of_ms_beijing(self.tip.time_ms);
        self.sign(
            key,
            Commitment {
                subject: u.clone(),
                kind: CommitmentKind::VoluntaryPublic,
                matter: format!("commitment {n}"),
                legal_basis: "Shanghai Social Credit Regulations, art. 31".into(),
                template_version: "SH-CC-2026-01".into(),
                accepting_agency: "market".into(),
                domain: "market".into(),
                content: Content::Sealed(xinlian_genesis::Hash32([5; 32])),
                date: today,
                deadline: today.plus_days(90),
                disclosure: Disclosure::Public,
                publication_consent: true,
            },
        )
    }

    /// The answer a node gives (as `proof_assembly::credit`), from the applied state.
    fn proof(&self, u: &Uscc) -> Result<CreditProof> {
        let checkpoint = self.checkpoint.clone().context("a block")?;
        let size = checkpoint.header.ledger_size;
        let leaves: Vec<Hash32> = self.records.iter().map(|r| leaf_hash(r.bytes())).collect();
        let prefix = key::credit_records_prefix(u);
        let mut records = Vec::new();
        for (k, _) in self
            .state
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
        {
            let index = u64::from_be_bytes(k[k.len() - 8..].try_into()?);
            records.push(LedgerEntry {
                index,
                record: HexBytes(self.records[index as usize].bytes().to_vec()),
                inclusion: inclusion_proof(&Leaves(&leaves), index, size)?,
            });
        }
        Ok(CreditProof {
            checkpoint,
            uscc: u.clone(),
            state: self.state.get(&key::credit(u)).cloned().map(HexBytes),
            index_proof: smt::prove(
                &Committed(&self.state, Index::Credit),
                &CreditState::index_key(u),
            )?,
            records,
        })
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn measure(batch_verify_per_s: f64, runs: usize) -> Result<Figures> {
    let dir = tempfile::tempdir()?;
    let mut ch = Chain::new(dir.path())?;
    // One enterprise with 1,000 credit records: its registration, 500 commitments, 499 outcomes.
    let (u, key, reg) = ch.register(0)?;
    ch.block(vec![reg])?;
    let cs: Vec<EncodedRecord> = (0..500).map(|n| ch.commitment(&u, &key, n)).collect();
    let ids: Vec<RecordId> = cs.iter().map(|r| r.id()).collect();
    ch.block(cs)?;
    let today = Date::of_ms_beijing(ch.tip.time_ms);
    let market = ch.market.key.clone();
    let outcomes: Vec<EncodedRecord> = ids[..499]
        .iter()
        .enumerate()
        .map(|(n, c)| {
            let verdict = if n % 10 == 0 {
                Verdict::Breached(Severity::Minor)
            } else {
                Verdict::Fulfilled
            };
            ch.sign(
                &market,
                Outcome {
                    commitment: *c,
                    verdict,
                    method: "document review".into(),
                    evidence: None,
                    document: format!("doc {n}"),
                    date: today,
                },
            )
        })
        .collect();
    ch.block(outcomes)?;
    let proof = ch.proof(&u)?;
    ensure!(
        proof.records.len() == 1000,
        "{} records",
        proof.records.len()
    );
    let answer_bytes = serde_json::to_vec(&proof)?.len();
    let (mut warm, mut cold) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        xinlian_client::crypto::forget_verified();
        let mut trusted = LightClient::new(ch.c.genesis.clone());
        trusted.advance(proof.checkpoint.clone(), None)?;
        let t = Instant::now();
        let v = trusted.verify_credit(&u, &proof)?;
        warm.push(t.elapsed().as_secs_f64() * 1e3);
        ensure!(v.history.records.len() == 1000, "the whole record verified");
        xinlian_client::crypto::forget_verified();
        let t = Instant::now();
        LightClient::new(ch.c.genesis.clone()).verify_credit(&u, &proof)?;
        cold.push(t.elapsed().as_secs_f64() * 1e3);
    }

    // Root maintenance: blocks of 4,096 commitments by 512 enterprises (8 each), then
    // by 4,096 (one each: the most index updates a block of that size can need).
    let typical = root_cost(&mut ch, 512, 1, runs.min(5))?;
    let worst = root_cost(&mut ch, 4096, 513, runs.min(3))?;
    Ok(Figures {
        records: 1000,
        answer_bytes,
        runs,
        verify_ms_p50: median(warm),
        verify_from_genesis_ms_p50: median(cold),
        signature_bound_ms: 1000.0 / batch_verify_per_s * 1e3,
        block_records: BLOCK_RECORDS,
        typical,
        worst,
    })
}

const BLOCK_RECORDS: usize = 4096;

/// Root maintenance over blocks of `BLOCK_RECORDS` commitments by `firms` enterprises
/// (registered first, numbered from `first`), median of `rounds` blocks.
fn root_cost(ch: &mut Chain, firms: usize, first: usize, rounds: usize) -> Result<RootCost> {
    let mut regs = Vec::new();
    let mut keys = Vec::new();
    for i in first..first + firms {
        let (u, k, r) = ch.register(i)?;
        regs.push(r);
        keys.push((u, k));
    }
    ch.block(regs)?;
    let (mut execute, mut credit, mut unified) = (Vec::new(), Vec::new(), Vec::new());
    let mut writes_per_record = 0.0;
    for round in 0..rounds {
        let recs: Vec<EncodedRecord> = (0..BLOCK_RECORDS)
            .map(|n| {
                let (u, k) = keys[n % keys.len()].clone();
                ch.commitment(&u, &k, 1000 + round * BLOCK_RECORDS + n)
            })
            .collect();
        let before = ch.state.clone();
        let (secs, writes) = ch.block(recs)?;
        execute.push(secs * 1e6 / BLOCK_RECORDS as f64);
        writes_per_record = writes.len() as f64 / BLOCK_RECORDS as f64;
        // The credit index's update alone, on the same writes over the same base.
        let mut o = Overlay::new(&before);
        for (k, v) in &writes {
            if let Some(v) = v
                && k.first() == Some(&key::CREDIT)
            {
                o.put(k.clone(), v);
            }
        }
        let t = Instant::now();
        index::update(&mut o, Index::Credit)?;
        credit.push(t.elapsed().as_secs_f64() * 1e6 / BLOCK_RECORDS as f64);
        // One map over every derived-state key: built over the base (untimed), then
        // every key the block wrote inserted (timed), in memory.
        let mut all = MemMap::default();
        for (k, v) in &before {
            smt::insert(&mut all, canonical::sha256(k), canonical::sha256(v)).expect("in memory");
        }
        let t = Instant::now();
        for (k, v) in &writes {
            let v = v.as_ref().map_or(Hash32([0; 32]), |v| canonical::sha256(v));
            smt::insert(&mut all, canonical::sha256(k), v).expect("in memory");
        }
        unified.push(t.elapsed().as_secs_f64() * 1e6 / BLOCK_RECORDS as f64);
    }
    Ok(RootCost {
        enterprises: firms,
        execute_us_per_record: median(execute),
        credit_root_us_per_record: median(credit),
        derived_writes_per_record: writes_per_record,
        unified_root_us_per_record: median(unified),
    })
}

pub fn print(f: &Figures) {
    println!(
        "  complete credit record of {} records ({:.2} MB of JSON), median of {} runs:",
        f.records,
        f.answer_bytes as f64 / 1e6,
        f.runs
    );
    println!(
        "    verify from a trusted header {:.1} ms (target ≤ 100 ms; {:.2}× the signatures' bound of {:.1} ms); from genesis alone {:.1} ms",
        f.verify_ms_p50,
        f.verify_ms_p50 / f.signature_bound_ms,
        f.signature_bound_ms,
        f.verify_from_genesis_ms_p50
    );
    for r in [&f.typical, &f.worst] {
        println!(
            "  keeping credit_root, blocks of {} commitments by {} enterprises: {:.2} µs per record = {:.1} % of executing it ({:.1} µs)",
            f.block_records,
            r.enterprises,
            r.credit_root_us_per_record,
            r.credit_root_us_per_record / r.execute_us_per_record * 100.0,
            r.execute_us_per_record
        );
        println!(
            "    one root over all derived state instead: {:.1} writes per record, {:.2} µs per record = {:.1}× the credit root, {:.1} % of execution",
            r.derived_writes_per_record,
            r.unified_root_us_per_record,
            r.unified_root_us_per_record / r.credit_root_us_per_record,
            r.unified_root_us_per_record / r.execute_us_per_record * 100.0
        );
    }
}
