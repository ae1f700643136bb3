//! Verified provenance against real nodes: on a generated chain of more than 1,000
//! events and on the devnet's food and drug chains, upstream, downstream and recall
//! reach are exactly what the generator's own books say; an answer with an event
//! removed, reordered or altered, a batch or record dropped, or a later recall left out
//! does not verify; a continuation page proven against a header older than the first
//! page's is refused (it could hide a later recall); offline bundles verify with no
//! node, through the CLI as well; a batch name that is no identifier is a 400.

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
        let known: BTreeMap<xinlian_client::ids::Uscc, u64> = (vb.holders.iter())
            .map(|(p, a)| {
                let u = p.uscc().expect("parties are named by USCC here").clone();
                (u, a.expect("amounts are public here"))
            })
            .collect();
        assert_eq!(
            &known,
            chain.holders.get(*name).unwrap_or(&BTreeMap::new()),
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
            .all(|t| t.amount == Some(100) && t.receipt.is_some())
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
    merged.merge(lc.verify_provenance(&next)?)?;
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

    older_continuation_pages_are_refused(&node, &c.genesis, &chain, &next, &recall)?;

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

/// After `recall` of an origin: a first page from the newest header (every origin
/// listed missing) continued by `stale`, a genuine page of the origins proven against
/// a header before the recall, would hide the recall while the answer looks complete.
/// The merge, an offline bundle and `fetch_provenance` from a node answering so all
/// refuse it with `OlderPage`; a continuation from a header no older verifies and shows
/// the recall.
fn older_continuation_pages_are_refused(
    node: &xinlian_tests::Node,
    genesis: &xinlian_genesis::Genesis,
    chain: &Chain,
    stale: &ProvenanceProof,
    recall: &xinlian_client::record::SignedRecord,
) -> anyhow::Result<()> {
    let target = &chain.final_batch;
    let first = node
        .client
        .provenance(target, Direction::Upstream, Some(1))?;
    let (h0, h1) = (
        stale.checkpoint.header.height,
        first.checkpoint.header.height,
    );
    anyhow::ensure!(h0 < h1, "the stale page ({h0}) predates the first ({h1})");
    let lc = LightClient::new(genesis.clone());
    let mut answer = lc.verify_provenance(&first)?;
    let roots: Vec<String> = answer.missing.iter().cloned().collect();
    assert_eq!(
        roots, stale.roots,
        "the stale page continues from the same roots"
    );
    assert_eq!(
        answer.clone().merge(lc.verify_provenance(stale)?),
        Err(ProvenanceError::OlderPage {
            first: h1,
            page: h0
        })
    );
    let bundle = |pages: Vec<ProvenanceProof>| ProvenanceBundle {
        format: PROVENANCE_BUNDLE_FORMAT.into(),
        chain: genesis.hash(),
        roster_changes: Vec::new(),
        root: target.clone(),
        direction: Direction::Upstream,
        pages,
    };
    let e = LightClient::verify_provenance_bundle(
        genesis.clone(),
        &bundle(vec![first.clone(), stale.clone()]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("older than the first page"), "{e}");
    expect!(e, ProvenanceError::OlderPage { .. });

    // Over HTTP, from a node that serves continuations from the stale header.
    let liar = LyingNode::start(node.client.base_url(), &first, stale)?;
    let e = fetch_provenance(
        &liar.client(),
        &mut LightClient::new(genesis.clone()),
        target,
        Direction::Upstream,
        None,
    )
    .map(|(a, _)| a.recalls_affecting(target))
    .unwrap_err();
    expect!(
        e,
        xinlian_client::http::FetchVerifyError::Provenance(ProvenanceError::OlderPage { .. })
    );
    liar.stop();

    // A continuation from the newest header is taken, and shows the recall.
    let fresh = node
        .client
        .provenance_from(&roots, Direction::Upstream, None)?;
    answer.merge(lc.verify_provenance(&fresh)?)?;
    assert!(answer.is_complete());
    assert_eq!(answer.final_from, h1);
    assert_eq!(
        answer.recalls_affecting(target),
        vec![(chain.origins[5].clone(), recall.id())]
    );
    let v = LightClient::verify_provenance_bundle(genesis.clone(), &bundle(vec![first, fresh]))?;
    assert_eq!(v, answer);
    Ok(())
}

/// A node on 127.0.0.1 that answers a batch's provenance with `first` and every
/// continuation with `next`, and passes every other GET to the real node `upstream`.
struct LyingNode {
    url: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LyingNode {
    fn start(
        upstream: &str,
        first: &ProvenanceProof,
        next: &ProvenanceProof,
    ) -> anyhow::Result<LyingNode> {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (first, next) = (serde_json::to_vec(first)?, serde_json::to_vec(next)?);
        let (upstream, flag) = (upstream.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(conn) = conn {
                    // A request the test's client sent; failing to answer fails the test.
                    let _ = LyingNode::answer(conn, &upstream, &first, &next);
                }
            }
        });
        Ok(LyingNode {
            url,
            stop,
            thread: Some(thread),
        })
    }

    fn client(&self) -> xinlian_client::http::NodeClient {
        xinlian_client::http::NodeClient::new(&self.url)
    }

    /// Reads one request and answers it (`Connection: close`).
    fn answer(
        mut conn: std::net::TcpStream,
        upstream: &str,
        first: &[u8],
        next: &[u8],
    ) -> anyhow::Result<()> {
        use std::io::{BufRead, Read, Write};
        let mut reader = std::io::BufReader::new(conn.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let mut length = 0;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            if h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse()?;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let (status, answer) = if method == "POST" && path.starts_with("/v1/provenance") {
            (200, next.to_vec())
        } else if path.starts_with("/v1/batches/") && path.contains("/provenance") {
            (200, first.to_vec())
        } else {
            let mut resp = ureq::get(format!("{upstream}{path}"))
                .config()
                .http_status_as_error(false)
                .build()
                .call()?;
            let status = resp.status().as_u16();
            (status, resp.body_mut().read_to_vec()?)
        };
        write!(
            conn,
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            answer.len()
        )?;
        conn.write_all(&answer)?;
        Ok(())
    }

    fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accepting thread so it sees the flag.
        let _ = std::net::TcpStream::connect(self.url.trim_start_matches("http://"));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A batch name no record could hold (a NUL, a space, too long) is refused with a 400
/// naming it, on every route that takes one, and the node goes on answering.
#[test]
fn a_batch_name_that_is_no_identifier_is_a_specific_400() -> anyhow::Result<()> {
    use xinlian_client::http::ClientError;
    let c = xinlian_tests::consortium!()?;
    let node = c.start()?;
    let refused = |r: Result<(), ClientError>, what: &str| match r {
        Err(ClientError::Refused {
            status: 400,
            code,
            message,
        }) => {
            assert_eq!(code, "invalid_identifier", "{what}: {message}");
            assert!(message.contains("batch id"), "{what}: {message}");
        }
        other => panic!("{what}: {other:?}"),
    };
    let long = "x".repeat(129);
    for name in ["\0", "rice\0-1", "a b", long.as_str()] {
        refused(node.client.batch(name).map(drop), "GET /v1/batches/{name}");
        refused(
            node.client
                .provenance(name, Direction::Upstream, None)
                .map(drop),
            "GET /v1/batches/{name}/provenance",
        );
        refused(
            node.client
                .provenance_from(&[name.to_string()], Direction::Both, None)
                .map(drop),
            "POST /v1/provenance",
        );
    }
    let epcis = ureq::get(format!("{}/v1/batches/%00/epcis", node.client.base_url()))
        .config()
        .http_status_as_error(false)
        .build()
        .call()?;
    assert_eq!(epcis.status().as_u16(), 400);
    // Still serving: an unknown but well-formed name is a 404, as before.
    match node.client.batch("no-such-batch") {
        Err(ClientError::Refused { status: 404, .. }) => {}
        other => panic!("{other:?}"),
    }
    node.stop()?;
    Ok(())
}

fn cli(node: &str, genesis: &Path, trust: &Path, args: &[&str]) -> std::process::Output {
    Command::new(CLI)
        .args(args)
        .env("XINLIAN_NODE", node)
        .env("XINLIAN_GENESIS", genesis)
        .env("XINLIAN_TRUST", trust)
        // The devnet's nodes serve TLS with certificates from its own CA.
        .env("XINLIAN_CA", genesis.with_file_name("tls").join("ca.pem"))
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
    let held: BTreeMap<String, Option<u64>> = view
        .holders
        .iter()
        .map(|h| (h.holder.to_string(), h.amount))
        .collect();
    let reported: BTreeMap<String, Option<u64>> =
        serde_json::from_value(r["batches"][0]["holders"].clone())?;
    assert_eq!(reported, held);
    // An unknown batch is refused by the node, not invented.
    let out = run(&["trace", "no-such-batch"]);
    assert_eq!(out.status.code(), Some(1));
    node.stop()?;
    Ok(())
}
