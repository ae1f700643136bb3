//! Verified provenance against real nodes: on a generated chain of more than 1,000
//! events and on the devnet's food and drug chains, upstream, downstream and recall
//! reach are exactly what the generator's own books say; an answer with an event
//! removed, reordered or altered, a batch or record dropped, or a later recall left out
//! does not verify; offline bundles verify with no node, through the CLI as well.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use xinlian_client::http::fetch_provenance;
use xinlian_client::proof::{LightClient, VerifyError};
use xinlian_client::provenance::{
    Direction, PROVENANCE_BUNDLE_FORMAT, ProvenanceBundle, ProvenanceError, ProvenanceProof,
};
use xinlian_client::record::{Recall, RecordId};
use xinlian_client::state::BatchState;
use xinlian_client::when::EventTime;
use xinlian_genesis::canonical;
use xinlian_tests::supply_chain::{Chain, food_chain, submit_all};

const CLI: &str = env!("CARGO_BIN_EXE_xinlian-under-test");
const NODE: &str = env!("CARGO_BIN_EXE_xinlian-node-under-test");

fn verify_err(lc: &LightClient, p: &ProvenanceProof) -> ProvenanceError {
    lc.verify_provenance(p)
        .expect_err("a tampered answer must not verify")
}

/// Asserts that `e` matches the pattern, showing the error's message if not.
macro_rules! expect {
    ($e:expr, $p:pat) => {
        let e = $e;
        assert!(matches!(e, $p), "{e}")
    };
}

fn batch_pos(p: &ProvenanceProof, name: &str) -> usize {
    p.batches.iter().position(|b| b.batch == name).unwrap()
}

fn check_exact(chain: &Chain, answer: &xinlian_client::provenance::Provenance, names: &[&String]) {
    let got: BTreeSet<&String> = answer.batches.keys().collect();
    let want: BTreeSet<&String> = names.iter().copied().collect();
    assert_eq!(got, want, "the batches reached");
    for name in names {
        let vb = &answer.batches[*name];
        let ids: Vec<RecordId> = vb.events.iter().map(|e| e.id).collect();
        assert_eq!(&ids, &chain.events[*name], "events of {name}, in order");
        let empty = BTreeMap::new();
        assert_eq!(
            &vb.holders,
            chain.holders.get(*name).unwrap_or(&empty),
            "holders of {name}"
        );
        assert!(vb.in_transit.is_empty(), "every shipment was received");
        assert_eq!(
            &vb.state.parents, &chain.parents[*name],
            "parents of {name}"
        );
    }
}

#[test]
fn a_generated_chain_of_over_1000_events_traces_exactly_and_tampering_fails() -> anyhow::Result<()>
{
    let c = xinlian_tests::consortium!()?;
    let node = c.start()?;
    let registrar = c.agency("registrar")?;
    let chain = food_chain(&registrar, &registrar, 36, 6, 1)?;
    submit_all(&node.client, &chain.registrations)?;
    submit_all(&node.client, &chain.records)?;

    // Upstream of the final batch: every batch, every event, every holder.
    let mut lc = LightClient::new(c.genesis.clone());
    let (up, pages) = fetch_provenance(
        &node.client,
        &mut lc,
        &chain.final_batch,
        Direction::Upstream,
        None,
    )?;
    assert!(up.is_complete());
    assert_eq!(pages.len(), 1);
    let mut all: Vec<&String> = chain.origins.iter().collect();
    all.extend(&chain.intermediates);
    all.push(&chain.final_batch);
    check_exact(&chain, &up, &all);
    // Custody: every transfer acknowledged, by the addressee, in order.
    let origin_transfers = &up.batches[&chain.origins[0]].transfers;
    assert_eq!(origin_transfers.len(), 6 * 2 + 1);
    assert!(
        origin_transfers
            .iter()
            .all(|t| t.receipt.is_some() && t.received_at.is_some_and(|r| r > t.shipped_at))
    );
    let fin = &up.batches[&chain.final_batch];
    assert_eq!(fin.transfers.len(), 2);
    assert!(
        fin.transfers
            .iter()
            .all(|t| t.amount == 100 && t.receipt.is_some())
    );
    let expected = chain.upstream_events(&chain.final_batch);
    assert!(expected.len() >= 1_000, "{} events", expected.len());
    let got: BTreeSet<RecordId> = up.all_events().iter().map(|e| e.id).collect();
    assert_eq!(got, expected);
    // The replayed holders agree with the node's own derived state.
    let view = node.client.batch(&chain.final_batch)?;
    let node_holders: BTreeMap<_, _> = view
        .holders
        .iter()
        .map(|h| (h.holder.clone(), h.amount))
        .collect();
    assert_eq!(node_holders, up.batches[&chain.final_batch].holders);

    // Downstream (recall reach) of one origin: its pack and the final batch.
    let origin = &chain.origins[5];
    let (down, _) = fetch_provenance(&node.client, &mut lc, origin, Direction::Downstream, None)?;
    check_exact(
        &chain,
        &down,
        &[origin, &chain.intermediates[1], &chain.final_batch],
    );
    let reach = xinlian_client::report::recall_reach(&down);
    assert_eq!(
        reach.batches.iter().map(|b| &b.batch).collect::<Vec<_>>(),
        vec![origin, &chain.intermediates[1], &chain.final_batch]
    );

    // Bounds: a small page lists the rest missing; continuing fills it in exactly.
    let small = node
        .client
        .provenance(&chain.final_batch, Direction::Upstream, Some(1))?;
    let partial = lc.verify_provenance(&small)?;
    assert_eq!(partial.batches.len(), 1 + chain.intermediates.len());
    assert_eq!(
        partial.missing.iter().collect::<BTreeSet<_>>(),
        chain.origins.iter().collect::<BTreeSet<_>>()
    );
    // The next page, from the missing batches as roots, completes it exactly.
    let roots: Vec<String> = partial.missing.iter().cloned().collect();
    let next = node
        .client
        .provenance_from(&roots, Direction::Upstream, None)?;
    let mut merged = partial.clone();
    merged.merge(lc.verify_provenance(&next)?);
    assert!(merged.is_complete());
    assert_eq!(
        merged.batches.keys().collect::<Vec<_>>(),
        up.batches.keys().collect::<Vec<_>>()
    );
    assert_eq!(merged.all_events().len(), expected.len());

    // Tampering, each failing with the error that names it.
    let page = &pages[0];
    let o = batch_pos(page, origin);
    let mut p = page.clone();
    p.batches[o].events.remove(3);
    expect!(verify_err(&lc, &p), ProvenanceError::Batch { .. });
    let mut p = page.clone();
    p.batches[o].events.swap(2, 3);
    let e = verify_err(&lc, &p);
    assert!(e.to_string().contains("event chain"), "{e}");
    let mut p = page.clone();
    let last = p.records.len() - 1;
    let n = p.records[last].record.0.len();
    p.records[last].record.0[n - 70] ^= 1;
    expect!(
        verify_err(&lc, &p),
        ProvenanceError::Verify(
            VerifyError::Record { .. }
                | VerifyError::RecordBytes { .. }
                | VerifyError::Inclusion { .. }
        )
    );
    let mut p = page.clone();
    p.records.remove(0);
    expect!(verify_err(&lc, &p), ProvenanceError::MissingRecord(_));
    let mut p = page.clone();
    p.batches.remove(batch_pos(page, &chain.intermediates[2]));
    expect!(verify_err(&lc, &p), ProvenanceError::Omitted(_));
    let mut p = page.clone();
    p.batches[o].index_proof.siblings[0].0[0] ^= 1;
    expect!(verify_err(&lc, &p), ProvenanceError::Batch { .. });

    // A later recall of an origin: the new answer shows every downstream batch as
    // affected, and an answer that leaves the recall out does not verify, whether it
    // drops the event or serves the batch's earlier (genuinely certified) state.
    let recall = registrar.sign(Recall {
        batch: origin.clone(),
        reason: "pesticide residue above GB 2763 limit".into(),
        time: EventTime {
            unix_ms: 1_795_981_600_000,
            offset_minutes: 480,
        },
    });
    submit_all(&node.client, std::slice::from_ref(&recall))?;
    let (after, new_pages) = fetch_provenance(
        &node.client,
        &mut lc,
        &chain.final_batch,
        Direction::Upstream,
        None,
    )?;
    assert_eq!(
        after.recalls_affecting(&chain.final_batch),
        vec![(origin.clone(), recall.id())]
    );
    assert!(after.recalls_affecting(&chain.origins[0]).is_empty());
    // Recall reach from the recalled origin: everything made from it is affected.
    let (down, _) = fetch_provenance(&node.client, &mut lc, origin, Direction::Downstream, None)?;
    let reach = xinlian_client::report::recall_reach(&down);
    assert_eq!(reach.batches.len(), 3);
    for b in &reach.batches {
        assert_eq!(
            b.affected_by,
            vec![(origin.clone(), recall.id())],
            "{}",
            b.batch
        );
    }
    let new = &new_pages[0];
    let no = batch_pos(new, origin);
    let mut p = new.clone();
    p.batches[no].events.pop();
    expect!(verify_err(&lc, &p), ProvenanceError::Batch { .. });
    let mut p = new.clone();
    p.batches[no] = page.batches[o].clone();
    let e = verify_err(&lc, &p);
    assert!(e.to_string().contains("batch index"), "{e}");
    // A state with one event fewer (as if the recall were not there) is not the one
    // the index commits to.
    let mut p = new.clone();
    let mut st: BatchState = canonical::decode(&p.batches[no].state.0, usize::MAX)?;
    st.events -= 1;
    st.recalled = None;
    p.batches[no].state.0 = canonical::encode(&st);
    p.batches[no].events.pop();
    let e = verify_err(&lc, &p);
    assert!(e.to_string().contains("batch index"), "{e}");

    // Offline: a bundle verifies with genesis alone; a wrong format is refused.
    let bundle = ProvenanceBundle {
        format: PROVENANCE_BUNDLE_FORMAT.into(),
        chain: c.genesis.hash(),
        roster_changes: Vec::new(),
        root: chain.final_batch.clone(),
        direction: Direction::Upstream,
        pages: new_pages.clone(),
    };
    let v = LightClient::verify_provenance_bundle(c.genesis.clone(), &bundle)?;
    assert_eq!(v, after);
    let mut b = bundle.clone();
    b.format = "xinlian-provenance/v0".into();
    expect!(
        LightClient::verify_provenance_bundle(c.genesis.clone(), &b).unwrap_err(),
        ProvenanceError::Format(_)
    );
    let mut b = bundle;
    b.root = chain.origins[0].clone();
    assert!(LightClient::verify_provenance_bundle(c.genesis.clone(), &b).is_err());
    node.stop()?;
    Ok(())
}

fn cli(node: &str, genesis: &Path, trust: &Path, args: &[&str]) -> std::process::Output {
    Command::new(CLI)
        .args(args)
        .env("XINLIAN_NODE", node)
        .env("XINLIAN_GENESIS", genesis)
        .env("XINLIAN_TRUST", trust)
        .output()
        .expect("run the CLI")
}

#[test]
fn the_devnet_food_and_drug_chains_trace_through_the_cli_and_bundles_verify_offline()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = xinlian_tests::start_devnet(NODE, dir.path())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.path().join("sample.json").exists() {
        anyhow::ensure!(Instant::now() < deadline, "sample data not loaded in 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let genesis = dir.path().join("genesis.toml");
    let trust = dir.path().join("trust.json");
    let url = node.client.base_url().to_string();
    let run = |args: &[&str]| cli(&url, &genesis, &trust, args);

    // Food: the bags trace back to the rice, with the inspection and the custody chain.
    let bundle = dir.path().join("rice.json");
    let out = run(&[
        "trace",
        "rice-pack-2026-001",
        "--json",
        "--bundle",
        bundle.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let batches: BTreeSet<&str> = v["batches"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        batches,
        BTreeSet::from(["rice-pack-2026-001", "rice-2026-sj-001"])
    );
    let kinds = |b: &str| -> Vec<String> {
        v["batches"][b]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e["record"]["envelope"]["body"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .next()
                    .unwrap()
                    .clone()
            })
            .collect()
    };
    assert_eq!(
        kinds("rice-2026-sj-001"),
        ["commission", "inspect", "ship", "receive", "transform"]
    );
    assert_eq!(
        kinds("rice-pack-2026-001"),
        ["transform", "ship", "receive", "inspect", "sell"]
    );
    let text = run(&["trace", "rice-pack-2026-001"]);
    let text = String::from_utf8(text.stdout)?;
    assert!(
        text.contains("complete:") && text.contains("made from:"),
        "{text}"
    );

    // The same chain as EPCIS 2.0, from the verified events: one event per record.
    let out = run(&["epcis", "export", "rice-pack-2026-001", "--upstream"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let types: Vec<&str> = doc["epcisBody"]["eventList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.len(), 9, "{types:?}");
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == "TransformationEvent")
            .count(),
        1
    );

    // Offline: no node at all (an address nothing listens on) and the bundle verifies;
    // one event removed from it and it does not (exit code 1).
    let offline = |args: &[&str]| cli("http://127.0.0.1:9", &genesis, &trust, args);
    let ok = offline(&["verify", bundle.to_str().unwrap()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let mut b: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&bundle)?)?;
    b["pages"][0]["batches"][1]["events"]
        .as_array_mut()
        .unwrap()
        .pop();
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, b.to_string())?;
    let bad = offline(&["verify", broken.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("proven state counts"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    // Drug: lot 2 was recalled; its recall reach says so and where the lot is.
    let out = run(&["recall-reach", "amox-2026-L002", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(r["complete"], true);
    assert_eq!(r["recalls"].as_array().unwrap().len(), 1);
    assert_eq!(r["batches"][0]["batch"], "amox-2026-L002");
    let view = node.client.batch("amox-2026-L002")?;
    let held: BTreeMap<String, u64> = view
        .holders
        .iter()
        .map(|h| (h.holder.to_string(), h.amount))
        .collect();
    let reported: BTreeMap<String, u64> =
        serde_json::from_value(r["batches"][0]["holders"].clone())?;
    assert_eq!(reported, held);
    // An unknown batch is refused by the node, not invented.
    let out = run(&["trace", "no-such-batch"]);
    assert_eq!(out.status.code(), Some(1));
    node.stop()?;
    Ok(())
}
