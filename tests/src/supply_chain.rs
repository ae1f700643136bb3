//! A generated food supply chain whose expected provenance is known independently of
//! the ledger: farms commission origin batches, which are inspected, moved between
//! warehouses, shipped to a processor and packed in groups into intermediate batches;
//! a distributor combines those into one final batch, ships it to retailers, who sell.
//! The generator keeps its own books (each batch's events in order, its parents and its
//! holders), so a test can compare a verified answer with them exactly.

use std::collections::BTreeMap;

use std::time::{Duration, Instant};

use anyhow::Result;
use xinlian_client::http::{ClientError, NodeClient};
use xinlian_client::ids::Uscc;
use xinlian_client::record::{
    BatchAmount, Body, Commission, Inspect, InspectionResult, NewBatch, Product, Quantity, Receive,
    RecordId, RegisterEntity, SaleKind, Sell, Ship, SignedRecord, Transform,
};
use xinlian_client::signer::RecordSigner;
use xinlian_client::when::EventTime;
use xinlian_genesis::keys::{self, public_key};

pub struct Chain {
    /// Registrations of every enterprise, signed by the registrar: submit first.
    pub registrations: Vec<SignedRecord>,
    /// Every traceability record, in an order in which each is valid after those before.
    pub records: Vec<SignedRecord>,
    pub origins: Vec<String>,
    pub intermediates: Vec<String>,
    pub final_batch: String,
    /// Each batch's events in order, as the ledger must record them.
    pub events: BTreeMap<String, Vec<RecordId>>,
    pub parents: BTreeMap<String, Vec<String>>,
    /// What each batch's holders hold at the end (zero holdings left out).
    pub holders: BTreeMap<String, BTreeMap<Uscc, u64>>,
}

impl Chain {
    /// Distinct events of `batch` and everything upstream of it.
    pub fn upstream_events(&self, batch: &str) -> std::collections::BTreeSet<RecordId> {
        let mut out = std::collections::BTreeSet::new();
        let mut stack = vec![batch.to_string()];
        while let Some(b) = stack.pop() {
            out.extend(self.events[&b].iter().copied());
            stack.extend(self.parents[&b].iter().cloned());
        }
        out
    }
}

struct Books<'a> {
    chain: &'a mut Chain,
    t: i64,
}

impl Books<'_> {
    fn time(&mut self) -> EventTime {
        self.t += 60_000;
        EventTime {
            unix_ms: self.t,
            offset_minutes: 480,
        }
    }

    fn put(&mut self, by: &RecordSigner, body: impl Into<Body>, batches: &[&str]) -> RecordId {
        let r = by.sign(body);
        let id = r.id();
        for b in batches {
            self.chain.events.entry(b.to_string()).or_default().push(id);
        }
        self.chain.records.push(r);
        id
    }

    fn hold(&mut self, batch: &str, who: &Uscc, delta: i64) {
        let h = self.chain.holders.entry(batch.to_string()).or_default();
        let v = h.entry(who.clone()).or_default();
        *v = (*v as i64 + delta) as u64;
        if *v == 0 {
            h.remove(who);
        }
    }
}

fn q(amount: u64, uom: &str) -> Quantity {
    Quantity {
        amount: amount.into(),
        uom: uom.into(),
    }
}

fn product(name: &str) -> Product {
    Product {
        name: name.into(),
        gtin: None,
        drug_code: None,
    }
}

/// A chain with `origins` origin batches (a multiple of 4), each moved between the farm
/// and a cold store `rounds` times before it leaves the farm. Upstream of the final
/// batch are `origins·(4 + 4·rounds) + 3·origins/4 + 7` distinct events.
/// `tag` keeps batch ids and USCCs apart between chains on one ledger.
pub fn food_chain(
    registrar: &RecordSigner,
    inspector: &RecordSigner,
    origins: usize,
    rounds: usize,
    tag: u32,
) -> Result<Chain> {
    assert!(
        origins > 0 && origins.is_multiple_of(4),
        "origins come in groups of 4"
    );
    let chain_id = registrar.chain;
    let enterprise = |n: u32, name: &str| -> Result<(Uscc, RecordSigner, SignedRecord)> {
        let uscc = Uscc::with_check(&format!("9131011{tag:04}{n:06}"))?;
        let key = keys::generate()?;
        let reg = registrar.sign(RegisterEntity {
            operator: None,
            uscc: uscc.clone(),
            name: name.into(),
            key: public_key(&key),
            check_override: None,
            possession: xinlian_client::crypto::prove_possession(
                &key,
                &chain_id,
                xinlian_client::crypto::KeyHolder::Enterprise(uscc.as_str()),
            ),
        });
        Ok((
            uscc,
            RecordSigner {
                key,
                chain: chain_id,
            },
            reg,
        ))
    };
    let mut regs = Vec::new();
    let mut actors = Vec::new();
    for (n, name) in [
        "farm A",
        "farm B",
        "farm C",
        "cold store",
        "processor",
        "distributor",
        "retailer A",
        "retailer B",
    ]
    .iter()
    .enumerate()
    {
        let (u, s, r) = enterprise(n as u32, name)?;
        regs.push(r);
        actors.push((u, s));
    }
    let (farms, rest) = actors.split_at(3);
    let (store, processor, distributor) = (&rest[0], &rest[1], &rest[2]);
    let retailers = &rest[3..5];
    let mut chain = Chain {
        registrations: regs,
        records: Vec::new(),
        origins: Vec::new(),
        intermediates: Vec::new(),
        final_batch: format!("t{tag}-final"),
        events: BTreeMap::new(),
        parents: BTreeMap::new(),
        holders: BTreeMap::new(),
    };
    let mut b = Books {
        chain: &mut chain,
        t: 1_795_881_600_000,
    };
    let loc = |s: &str| format!("urn:test:loc:{s}");
    for i in 0..origins {
        let (fu, fs) = &farms[i % farms.len()];
        let name = format!("t{tag}-origin-{i:04}");
        let time = b.time();
        b.put(
            fs,
            Commission {
                batch: name.clone(),
                domain: "food".into(),
                product: product("paddy rice"),
                lot: format!("L{i}"),
                quantity: q(1_000, "KGM"),
                origin: loc(&format!("field-{i}")),
                time,
            },
            &[&name],
        );
        b.hold(&name, fu, 1_000);
        b.chain.parents.insert(name.clone(), Vec::new());
        let time = b.time();
        b.put(
            inspector,
            Inspect {
                batch: name.clone(),
                result: InspectionResult::Pass,
                standard: "GB 2763-2021".into(),
                report: None,
                location: loc(&format!("field-{i}")),
                time,
            },
            &[&name],
        );
        // Custody back and forth between the farm and a cold store.
        let mut at = (fu, fs);
        let mut other = (&store.0, &store.1);
        for _ in 0..rounds * 2 {
            let time = b.time();
            let ship = b.put(
                at.1,
                Ship {
                    batch: name.clone(),
                    quantity: q(1_000, "KGM"),
                    to: other.0.clone().into(),
                    from_location: loc("a"),
                    to_location: loc("b"),
                    time,
                },
                &[&name],
            );
            let time = b.time();
            b.put(
                other.1,
                Receive {
                    shipment: ship,
                    location: loc("b"),
                    time,
                },
                &[&name],
            );
            b.hold(&name, at.0, -1_000);
            b.hold(&name, other.0, 1_000);
            std::mem::swap(&mut at, &mut other);
        }
        // To the processor: 800 kg; the farm keeps 200.
        let time = b.time();
        let ship = b.put(
            fs,
            Ship {
                batch: name.clone(),
                quantity: q(800, "KGM"),
                to: processor.0.clone().into(),
                from_location: loc("farm"),
                to_location: loc("plant"),
                time,
            },
            &[&name],
        );
        let time = b.time();
        b.put(
            &processor.1,
            Receive {
                shipment: ship,
                location: loc("plant"),
                time,
            },
            &[&name],
        );
        b.hold(&name, fu, -800);
        b.hold(&name, &processor.0, 800);
        b.chain.origins.push(name);
    }
    let origin_names = b.chain.origins.clone();
    for (g, group) in origin_names.chunks(4).enumerate() {
        let name = format!("t{tag}-pack-{g:03}");
        let time = b.time();
        let mut touched: Vec<&str> = group.iter().map(String::as_str).collect();
        touched.push(&name);
        b.put(
            &processor.1,
            Transform {
                inputs: group
                    .iter()
                    .map(|o| BatchAmount {
                        batch: o.clone(),
                        quantity: q(800, "KGM"),
                    })
                    .collect(),
                outputs: vec![NewBatch {
                    batch: name.clone(),
                    domain: "food".into(),
                    product: product("rice, 5 kg bags"),
                    lot: format!("P{g}"),
                    quantity: q(600, "H87"),
                }],
                location: loc("plant"),
                time,
            },
            &touched,
        );
        for o in group {
            b.hold(o, &processor.0, -800);
        }
        b.hold(&name, &processor.0, 600);
        b.chain.parents.insert(name.clone(), group.to_vec());
        let time = b.time();
        let ship = b.put(
            &processor.1,
            Ship {
                batch: name.clone(),
                quantity: q(500, "H87"),
                to: distributor.0.clone().into(),
                from_location: loc("plant"),
                to_location: loc("dc"),
                time,
            },
            &[&name],
        );
        let time = b.time();
        b.put(
            &distributor.1,
            Receive {
                shipment: ship,
                location: loc("dc"),
                time,
            },
            &[&name],
        );
        b.hold(&name, &processor.0, -500);
        b.hold(&name, &distributor.0, 500);
        b.chain.intermediates.push(name);
    }
    let packs = b.chain.intermediates.clone();
    let fin = b.chain.final_batch.clone();
    let time = b.time();
    let mut touched: Vec<&str> = packs.iter().map(String::as_str).collect();
    touched.push(&fin);
    b.put(
        &distributor.1,
        Transform {
            inputs: packs
                .iter()
                .map(|p| BatchAmount {
                    batch: p.clone(),
                    quantity: q(500, "H87"),
                })
                .collect(),
            outputs: vec![NewBatch {
                batch: fin.clone(),
                domain: "food".into(),
                product: product("rice, mixed pallet"),
                lot: "F1".into(),
                quantity: q(500 * packs.len() as u64, "H87"),
            }],
            location: loc("dc"),
            time,
        },
        &touched,
    );
    for p in &packs {
        b.hold(p, &distributor.0, -500);
    }
    let total = 500 * packs.len() as u64;
    b.hold(&fin, &distributor.0, total as i64);
    b.chain.parents.insert(fin.clone(), packs.clone());
    for r in retailers {
        let time = b.time();
        let ship = b.put(
            &distributor.1,
            Ship {
                batch: fin.clone(),
                quantity: q(100, "H87"),
                to: r.0.clone().into(),
                from_location: loc("dc"),
                to_location: loc("shop"),
                time,
            },
            &[&fin],
        );
        let time = b.time();
        b.put(
            &r.1,
            Receive {
                shipment: ship,
                location: loc("shop"),
                time,
            },
            &[&fin],
        );
        let time = b.time();
        b.put(
            &r.1,
            Sell {
                batch: fin.clone(),
                quantity: q(30, "H87"),
                kind: SaleKind::RetailSold,
                location: loc("shop"),
                time,
            },
            &[&fin],
        );
        b.hold(&fin, &distributor.0, -100);
        b.hold(&fin, &r.0, 70);
    }
    Ok(chain)
}

/// Submits in order, waiting out `mempool_full` by watching the ledger grow; returns
/// once the last record is final.
pub fn submit_all(client: &NodeClient, records: &[SignedRecord]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    for r in records {
        loop {
            match client.submit(r) {
                Ok(_) => break,
                Err(ClientError::Refused { code, .. }) if code == "mempool_full" => {
                    anyhow::ensure!(Instant::now() < deadline, "mempool stayed full");
                    let before = client.status()?.ledger_size;
                    while client.status()?.ledger_size == before {
                        anyhow::ensure!(Instant::now() < deadline, "no block for 120 s");
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    if let Some(last) = records.last() {
        let v = client.record(&last.id(), 30_000)?;
        anyhow::ensure!(v.height.is_some(), "last record not final in 30 s");
    }
    Ok(())
}
