//! A realistic mix of records, driven open-loop: every actor is one enterprise that
//! cycles through commissioning a batch, shipping part of it to a partner (who
//! acknowledges receipt), making a commitment that the market regulator then records as
//! fulfilled or breached, and repairing a breach; the registrar registers a new
//! enterprise every cycle. An actor sends each record to its home node, so that records
//! depending on one another meet in one mempool in order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xinlian_client::crypto::{KeyHolder, prove_possession};
use xinlian_client::http::{ClientError, NodeClient};
use xinlian_client::ids::Uscc;
use xinlian_client::record::*;
use xinlian_client::signer::RecordSigner;
use xinlian_client::when::{Date, EventTime};
use xinlian_genesis::canonical::sha256;
use xinlian_genesis::keys::{self, SigningKey};

pub struct Enterprise {
    pub uscc: Uscc,
    pub signer: RecordSigner,
}

/// Shared between the actors, the pacer and the watcher.
pub struct Shared {
    /// Offered rate, records per second (0 pauses).
    pub rate: AtomicU64,
    /// Records the pacer has allowed since `epoch`.
    pub sent: AtomicU64,
    pub epoch: Mutex<(Instant, u64)>,
    pub stop: AtomicBool,
    /// Submission time of each record, until the watcher sees it final.
    pub submitted: Mutex<HashMap<RecordId, Instant>>,
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub refusals: Mutex<HashMap<String, u64>>,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            rate: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            epoch: Mutex::new((Instant::now(), 0)),
            stop: AtomicBool::new(false),
            submitted: Mutex::new(HashMap::new()),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            refusals: Mutex::new(HashMap::new()),
        })
    }

    /// Sets the offered rate from now on.
    pub fn set_rate(&self, rate: u64) {
        let mut e = self.epoch.lock().expect("not poisoned");
        *e = (Instant::now(), self.sent.load(Ordering::SeqCst));
        self.rate.store(rate, Ordering::SeqCst);
    }

    /// Waits for the pacer's permission to send one record (open loop: the schedule
    /// does not wait for answers). `false` when stopping.
    fn permit(&self) -> bool {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            let rate = self.rate.load(Ordering::SeqCst);
            if rate == 0 {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            let (start, base) = *self.epoch.lock().expect("not poisoned");
            let allowed = base + (start.elapsed().as_secs_f64() * rate as f64) as u64;
            let sent = self.sent.load(Ordering::SeqCst);
            if sent < allowed {
                if self
                    .sent
                    .compare_exchange(sent, sent + 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    return true;
                }
                continue;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn kg(amount: u64) -> Quantity {
    Quantity {
        amount: amount.into(),
        uom: "KGM".into(),
    }
}

/// Who takes part in one actor's cycle: its enterprise, the partner it ships to, and
/// the market regulator as credit authority and as registrar.
pub struct Cast {
    pub me: Enterprise,
    pub partner: Enterprise,
    pub market: RecordSigner,
    pub registrar: RecordSigner,
    pub index: usize,
}

/// Where a cycle's records go: a node's API under the pacer (`Actor`), or the blocks
/// of the store fill (`store_fill`).
pub trait Sink {
    /// Signs and sends one record: its id if it was taken, `None` if it was refused or
    /// the run is stopping.
    fn send(&mut self, signer: &RecordSigner, body: Body) -> Option<RecordId>;
}

pub struct Actor {
    pub cast: Cast,
    pub node: NodeClient,
    /// Sends each cycle's records in one `records/bulk` request, not one by one.
    pub bulk: bool,
}

/// An actor's records through a node's API, at the pacer's rate.
struct ApiSink<'a> {
    node: &'a NodeClient,
    shared: &'a Shared,
}

impl Sink for ApiSink<'_> {
    fn send(&mut self, signer: &RecordSigner, body: Body) -> Option<RecordId> {
        let shared = self.shared;
        if !shared.permit() {
            return None;
        }
        let rec = signer.sign(body);
        let id = rec.id();
        let at = Instant::now();
        shared
            .submitted
            .lock()
            .expect("not poisoned")
            .insert(id, at);
        match self.node.submit(&rec) {
            Ok(_) => {
                shared.accepted.fetch_add(1, Ordering::Relaxed);
                Some(id)
            }
            Err(e) => {
                shared.submitted.lock().expect("not poisoned").remove(&id);
                let code = match &e {
                    ClientError::Refused { code, .. } => code.clone(),
                    _ => "unreachable".into(),
                };
                refused(shared, code);
                None
            }
        }
    }
}

/// Counts one refusal by its code.
fn refused(shared: &Shared, code: String) {
    shared.refused.fetch_add(1, Ordering::Relaxed);
    *shared
        .refusals
        .lock()
        .expect("not poisoned")
        .entry(code)
        .or_default() += 1;
}

/// An actor's records through a node's bulk route: a cycle's records, each sent under
/// the pacer, are signed, timed and held, and go in one request when the cycle ends. A record
/// counts as taken when signed (its id is known), so the ones after it in the cycle
/// are made; the node then admits them in order, refusing what depends on a refusal.
struct BulkSink<'a> {
    node: &'a NodeClient,
    shared: &'a Shared,
    held: Vec<EncodedRecord>,
}

impl Sink for BulkSink<'_> {
    fn send(&mut self, signer: &RecordSigner, body: Body) -> Option<RecordId> {
        if !self.shared.permit() {
            return None;
        }
        let rec = EncodedRecord::new(signer.sign(body));
        let id = rec.id();
        // Timed from here: the wait for the rest of the cycle counts in its latency.
        self.shared
            .submitted
            .lock()
            .expect("not poisoned")
            .insert(id, Instant::now());
        self.held.push(rec);
        Some(id)
    }
}

impl BulkSink<'_> {
    fn flush(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        let forget = |id: &RecordId| {
            self.shared
                .submitted
                .lock()
                .expect("not poisoned")
                .remove(id);
        };
        match self.node.submit_many(&held) {
            Ok(answer) => {
                for v in answer.results {
                    match v.code {
                        None => {
                            self.shared.accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(code) => {
                            forget(&v.id);
                            refused(self.shared, code);
                        }
                    }
                }
            }
            Err(e) => {
                let code = match &e {
                    ClientError::Refused { code, .. } => code.clone(),
                    _ => "unreachable".into(),
                };
                for r in &held {
                    forget(&r.id());
                    refused(self.shared, code.clone());
                }
            }
        }
    }
}

impl Actor {
    pub fn run(&self, shared: &Shared) {
        let mut cycle: u64 = 0;
        if self.bulk {
            let mut sink = BulkSink {
                node: &self.node,
                shared,
                held: Vec::new(),
            };
            while !shared.stop.load(Ordering::Relaxed) {
                cycle += 1;
                self.cast.cycle(cycle, now_ms(), &mut sink);
                sink.flush();
            }
            return;
        }
        let mut sink = ApiSink {
            node: &self.node,
            shared,
        };
        while !shared.stop.load(Ordering::Relaxed) {
            cycle += 1;
            self.cast.cycle(cycle, now_ms(), &mut sink);
        }
    }
}

impl Cast {
    /// One cycle of the mix, dated `now_ms` (at most nine records; a refused record
    /// skips those that depend on it).
    pub fn cycle(&self, cycle: u64, now_ms: i64, sink: &mut impl Sink) {
        let today = Date::of_ms_beijing(now_ms);
        let event_time = || EventTime {
            unix_ms: now_ms - 60_000,
            offset_minutes: 480,
        };
        // A new enterprise registered by the registrar.
        let fresh = Uscc::with_check(&format!(
            "9131{:04}{:09}",
            self.index,
            cycle % 1_000_000_000
        ))
        .expect("payload of digits");
        let key = keys::generate().expect("randomness");
        let possession = prove_possession(
            &key,
            &self.registrar.chain,
            KeyHolder::Enterprise(fresh.as_str()),
        );
        sink.send(
            &self.registrar,
            RegisterEntity {
                operator: None,
                uscc: fresh,
                name: format!("bench {} {}", self.index, cycle),
                key: keys::public_key(&key),
                check_override: None,
                possession,
            }
            .into(),
        );
        // Traceability: commission, ship part, the partner acknowledges.
        let batch = format!("bench-{}-{cycle}", self.index);
        if sink
            .send(
                &self.me.signer,
                Commission {
                    batch: batch.clone(),
                    domain: "food".into(),
                    product: Product {
                        name: "rice".into(),
                        gtin: None,
                        drug_code: None,
                    },
                    lot: format!("L{cycle}"),
                    quantity: kg(100),
                    origin: "urn:xinlian:loc:bench-farm".into(),
                    time: event_time(),
                }
                .into(),
            )
            .is_some()
            && let Some(ship) = sink.send(
                &self.me.signer,
                Ship {
                    batch,
                    quantity: kg(40),
                    to: self.partner.uscc.clone().into(),
                    from_location: "urn:xinlian:loc:bench-farm".into(),
                    to_location: "urn:xinlian:loc:bench-plant".into(),
                    time: event_time(),
                }
                .into(),
            )
        {
            sink.send(
                &self.partner.signer,
                Receive {
                    shipment: ship,
                    location: "urn:xinlian:loc:bench-plant".into(),
                    time: event_time(),
                }
                .into(),
            );
        }
        // Credit: a commitment, its outcome, and a repair of every third breach.
        let Some(c) = sink.send(
            &self.me.signer,
            Commitment {
                subject: self.me.uscc.clone(),
                kind: CommitmentKind::IndustrySelfDiscipline,
                matter: format!("行业自律承诺 self-discipline pledge {cycle}"),
                legal_basis: "《上海市社会信用条例》 Shanghai Social Credit Regulations".into(),
                template_version: "SH-CC-2026-01".into(),
                accepting_agency: "market".into(),
                domain: "market".into(),
                content: Content::Sealed(xinlian_genesis::Hash32([5; 32])),
                date: today,
                deadline: Date(today.0 + 30),
                disclosure: Disclosure::Public,
                publication_consent: true,
            }
            .into(),
        ) else {
            return;
        };
        let breach = cycle.is_multiple_of(3);
        let verdict = if breach {
            Verdict::Breached(Severity::Minor)
        } else {
            Verdict::Fulfilled
        };
        let Some(o) = sink.send(
            &self.market,
            Outcome {
                commitment: c,
                verdict,
                method: "document review".into(),
                evidence: Some(sha256(&cycle.to_be_bytes())),
                document: format!("沪市监〔2026〕{cycle}号"),
                date: today,
            }
            .into(),
        ) else {
            return;
        };
        if breach
            && let Some(a) = sink.send(
                &self.me.signer,
                RepairApplication {
                    outcome: o,
                    pledge: Content::Sealed(xinlian_genesis::Hash32([6; 32])),
                    evidence: vec![sha256(b"rectification")],
                    date: today,
                }
                .into(),
            )
        {
            sink.send(
                &self.market,
                RepairDecision {
                    application: a,
                    approved: true,
                    reason: "整改到位 verified".into(),
                    date: today,
                }
                .into(),
            );
        }
    }
}

pub fn enterprise(
    index: usize,
    chain: xinlian_genesis::Hash32,
) -> anyhow::Result<(Enterprise, SigningKey)> {
    let key = keys::generate()?;
    let uscc = Uscc::with_check(&format!("91319{index:012}")).expect("payload of digits");
    Ok((
        Enterprise {
            uscc,
            signer: RecordSigner {
                key: key.clone(),
                chain,
            },
        },
        key,
    ))
}
