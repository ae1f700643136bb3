//! The browser's verifier (node/web, TypeScript) is a second implementation of
//! docs/verification.md. Run by Node.js from the very bundle a node embeds
//! (`xinlian_node::web::VERIFY_CLI`), it must reach the Rust verifier's verdict on every
//! proof bundle of a real chain — four validators, a registrar, an enterprise that
//! rotated its own key, a roster change by vote — and on well over a thousand copies of
//! them with one byte changed or their structure tampered with; hash the genesis file
//! to the same chain id; and accept exactly the signatures and Merkle proofs of the
//! public vectors that the Rust code accepts. The node serves the pages themselves.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use xinlian_client::crypto::{KeyHolder, prove_possession};
use xinlian_client::http::{NodeClient, RequestSigner, fetch_provenance};
use xinlian_client::ids::Uscc;
use xinlian_client::proof::{BUNDLE_FORMAT, Bundle, LightClient};
use xinlian_client::provenance::{
    Direction, PROVENANCE_BUNDLE_FORMAT, Provenance, ProvenanceBundle,
};
use xinlian_client::record::{
    Change, EncodedRecord, Proposal, RegisterEntity, RotateEntityKey, Vote,
};
use xinlian_client::signer::RecordSigner;
use xinlian_genesis::keys::{self, public_key};
use xinlian_genesis::scaffold::{genesis_path, signing_key_path};
use xinlian_genesis::{Genesis, Role};
use xinlian_tests::{Consortium, Node, commission, register_enterprise, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_xinlian-node-under-test");
/// Tampered copies checked by both verifiers (each of the two kinds of change).
const TAMPERED_EACH: usize = 700;
/// Tampered copies of provenance bundles (larger: each holds a whole chain of custody).
const PROVENANCE_TAMPERED_EACH: usize = 300;
/// Tampered copies of credit reports.
const CREDIT_TAMPERED_EACH: usize = 300;

/// The TypeScript verifier's driver, written where Node.js can run it.
fn verify_cli(dir: &Path) -> Result<std::path::PathBuf> {
    let path = dir.join("verify-cli.mjs");
    std::fs::write(&path, xinlian_node::web::VERIFY_CLI)?;
    Ok(path)
}

fn node_js(cli: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("node")
        .arg(cli)
        .args(args)
        .output()
        .context("run Node.js (node), which the web pages are built with")?;
    ensure!(
        out.status.success(),
        "node {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// A deterministic generator, so that a failing case can be found again.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The chain: registrations, an enterprise's self-rotation and the batch it then
/// commissions (two key bindings), and a vote that gives the registrar a credit role (a
/// roster change that keeps the validator set), then more records after it.
struct Chain {
    c: Consortium,
    nodes: Vec<Node>,
}

fn chain() -> Result<Chain> {
    let c = Consortium::with_nodes(BIN, 4, 0)?;
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..4 {
        let peers: Vec<&Node> = nodes.iter().collect();
        let n = c.start_member(&format!("v{i}"), &peers)?;
        nodes.push(n);
    }
    let client = &nodes[0].client;
    let uscc = Uscc::with_check("91320000000000001")?;
    let (old, _) = register_enterprise(&c, client, uscc.clone(), keys::generate()?)?;
    let new_key = keys::generate()?;
    let rotate = old.sign(RotateEntityKey {
        possession: prove_possession(&new_key, &old.chain, KeyHolder::Enterprise(uscc.as_str())),
        uscc,
        new_key: public_key(&new_key),
    });
    final_(client.submit_and_wait(&rotate, 10_000)?.height, "rotation")?;
    let new = RecordSigner {
        key: new_key,
        chain: old.chain,
    };
    final_(
        client
            .submit_and_wait(&new.sign(commission("rice-1")), 10_000)?
            .height,
        "commission",
    )?;

    let h = client.status()?.height;
    let (deadline, effective) = (h + 20, h + 25);
    let change = Change::SetRoles {
        member: "registrar".into(),
        roles: vec![
            Role::Registrar,
            Role::CreditAuthority("food".into()),
            Role::TraceAuthority("food".into()),
        ],
        voting_power: 0,
    };
    let propose = c.agency("v0")?.sign(Proposal {
        change,
        reason: "the registrar also decides food credit measures".into(),
        deadline,
        effective,
        possession: Vec::new(),
    });
    let proposal = client.submit_and_wait(&propose, 10_000)?;
    final_(proposal.height, "proposal")?;
    for v in ["v1", "v2"] {
        let vote = c.agency(v)?.sign(Vote {
            proposal: proposal.id,
            approve: true,
        });
        final_(client.submit_and_wait(&vote, 10_000)?.height, "vote")?;
    }
    // Blocks come only with records: registrations keep them coming until the change.
    let registrar = c.agency("registrar")?;
    let mut n = 100;
    wait_until(
        std::time::Duration::from_secs(60),
        "the roster change",
        || {
            n += 1;
            let uscc = Uscc::with_check(&format!("91320000{n:09}")).expect("a valid code");
            let key = keys::generate().expect("a key");
            let _ = client.submit(&registrar.sign(RegisterEntity {
                possession: prove_possession(
                    &key,
                    &registrar.chain,
                    KeyHolder::Enterprise(uscc.as_str()),
                ),
                uscc,
                name: format!("tick {n}"),
                operator: None,
                key: public_key(&key),
                check_override: None,
            }));
            client
                .roster_changes(1)
                .is_ok_and(|r| !r.changes.is_empty())
                && client.status().is_ok_and(|s| s.height > effective)
        },
    )?;
    let uscc = Uscc::with_check("91320000000000002")?;
    let (late, _) = register_enterprise(&c, client, uscc, keys::generate()?)?;
    final_(
        client
            .submit_and_wait(&late.sign(commission("rice-2")), 10_000)?
            .height,
        "a record after the change",
    )?;
    Ok(Chain { c, nodes })
}

fn final_(height: Option<u64>, what: &str) -> Result<()> {
    ensure!(height.is_some(), "{what} not final in 10 s");
    Ok(())
}

/// Every record of the chain as the offline bundle `xinlian prove` writes.
fn bundles(ch: &Chain) -> Result<Vec<String>> {
    let client = &ch.nodes[0].client;
    let mut light = LightClient::new(ch.c.genesis.clone());
    light.accept_changes(&client.roster_changes(1)?.changes)?;
    let tip = client.status()?.height;
    let mut out = Vec::new();
    for h in 1..=tip {
        for id in client.block(h)?.records {
            let proof = client.record_proof(&id, None)?;
            let verified = light.verify_record(&proof)?;
            let bundle = Bundle {
                format: BUNDLE_FORMAT.into(),
                chain: light.chain(),
                roster_changes: light.changes_until(verified.final_at + 1),
                proof,
            };
            out.push(serde_json::to_string(&bundle)?);
        }
    }
    Ok(out)
}

fn rust_verdict(g: &Genesis, text: &str) -> bool {
    serde_json::from_str::<Bundle>(text)
        .is_ok_and(|b| LightClient::verify_bundle(g.clone(), &b).is_ok())
}

/// One byte of the JSON text replaced by another character a JSON text can hold.
fn byte_tampered(rng: &mut Rng, text: &str) -> String {
    const CHARS: &[u8] = b"0123456789abcdefABCDEF{}[]\":,-.eEnulx ";
    let mut b = text.as_bytes().to_vec();
    loop {
        let (i, c) = (rng.below(b.len()), CHARS[rng.below(CHARS.len())]);
        if b[i] != c {
            b[i] = c;
            return String::from_utf8_lossy(&b).into_owned();
        }
    }
}

/// Every place in a JSON value: the path of keys and indices to it.
fn places(v: &Value, at: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                at.push(Value::String(k.clone()));
                places(x, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                at.push(Value::from(i));
                places(x, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn at_mut<'v>(v: &'v mut Value, path: &[Value]) -> &'v mut Value {
    path.iter().fold(v, |v, p| match p {
        Value::String(k) => &mut v[k.as_str()],
        _ => &mut v[p.as_u64().expect("index") as usize],
    })
}

/// A structural change: a field dropped, an array element dropped, repeated or
/// swapped, a number moved, a string or a whole part taken from another bundle.
fn structurally_tampered(rng: &mut Rng, text: &str, other: &str) -> String {
    let mut v: Value = serde_json::from_str(text).expect("a bundle is JSON");
    let o: Value = serde_json::from_str(other).expect("a bundle is JSON");
    let mut all = Vec::new();
    places(&v, &mut Vec::new(), &mut all);
    let path = all[1 + rng.below(all.len() - 1)].clone();
    let (parent, last) = path.split_at(path.len() - 1);
    let choice = rng.below(6);
    let target = at_mut(&mut v, &path).clone();
    match (choice, &target) {
        (0, _) => match at_mut(&mut v, parent) {
            Value::Object(m) => {
                m.remove(last[0].as_str().expect("key"));
            }
            Value::Array(a) => {
                a.remove(last[0].as_u64().expect("index") as usize);
            }
            _ => unreachable!("a parent holds its child"),
        },
        (1, _) => {
            if let Value::Array(a) = at_mut(&mut v, parent) {
                a.push(target.clone());
            } else {
                *at_mut(&mut v, &path) = Value::Null;
            }
        }
        (2, Value::Array(a)) if a.len() >= 2 => {
            let (i, j) = (rng.below(a.len()), rng.below(a.len()));
            let mut a = a.clone();
            a.swap(i, j);
            if i == j {
                a.reverse();
            }
            *at_mut(&mut v, &path) = Value::Array(a);
        }
        (3, Value::Number(n)) => {
            let n = n.as_u64().unwrap_or(0);
            let moved = match rng.below(3) {
                0 => n + 1,
                1 => n.saturating_sub(1).max(u64::from(n == 0)),
                _ => 1 << 60,
            };
            *at_mut(&mut v, &path) = Value::from(moved);
        }
        (4, Value::String(s)) => {
            let replaced = match rng.below(2) {
                0 => s.to_uppercase(),
                _ => format!("{s}00"),
            };
            *at_mut(&mut v, &path) = Value::String(replaced);
        }
        _ => {
            // The same place in another bundle, where it has one.
            let mut from = &o;
            for p in &path {
                from = match p {
                    Value::String(k) => &from[k.as_str()],
                    _ => &from[p.as_u64().expect("index") as usize],
                };
            }
            *at_mut(&mut v, &path) = if from.is_null() {
                Value::Null
            } else {
                from.clone()
            };
        }
    }
    serde_json::to_string(&v).expect("serialises")
}

#[test]
fn the_browsers_verifier_agrees_with_the_rust_one_on_every_bundle_good_or_tampered() -> Result<()> {
    let ch = chain()?;
    let work = tempfile::tempdir()?;
    let cli = verify_cli(work.path())?;
    let genesis_file = genesis_path(ch.c.path());
    let genesis = genesis_file.display().to_string();

    // The chain id from the genesis file, and from the file the node serves.
    let id = node_js(&cli, &["genesis", &genesis])?;
    ensure!(id.trim() == ch.c.genesis.hash().to_hex(), "chain id {id}");
    let served = ureq::get(&format!("{}/v1/genesis", ch.nodes[0].client.base_url()))
        .call()?
        .into_body()
        .read_to_string()?;
    let served_file = work.path().join("served-genesis.toml");
    std::fs::write(&served_file, served)?;
    let id = node_js(&cli, &["genesis", &served_file.display().to_string()])?;
    ensure!(
        id.trim() == ch.c.genesis.hash().to_hex(),
        "served genesis hashes to {id}"
    );

    let good = bundles(&ch)?;
    ensure!(good.len() >= 12, "only {} records", good.len());
    ensure!(
        good.iter().any(|b| b.contains("\"roster_changes\":[{")),
        "no bundle carries a roster change"
    );
    let mut rng = Rng(0x5eed_0f7e_57ab);
    let mut cases: Vec<(String, String)> =
        good.iter().map(|b| ("good".into(), b.clone())).collect();
    for i in 0..TAMPERED_EACH {
        let b = &good[i % good.len()];
        let other = &good[rng.below(good.len())];
        cases.push((format!("byte #{i}"), byte_tampered(&mut rng, b)));
        cases.push((
            format!("structure #{i}"),
            structurally_tampered(&mut rng, b, other),
        ));
    }
    let list = work.path().join("bundles.jsonl");
    let mut f = std::fs::File::create(&list)?;
    for (_, text) in &cases {
        // One bundle per line: JSON text holds no raw newline.
        ensure!(!text.contains('\n'));
        writeln!(f, "{text}")?;
    }
    drop(f);
    let ts: Vec<Value> = node_js(&cli, &["bundles", &genesis, &list.display().to_string()])?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    ensure!(
        ts.len() == cases.len(),
        "{} verdicts for {} bundles",
        ts.len(),
        cases.len()
    );

    let (mut refused, mut passed, mut disagree) = (0, 0, Vec::new());
    for ((what, text), t) in cases.iter().zip(&ts) {
        let rust = rust_verdict(&ch.c.genesis, text);
        let script = t["verified"] == true;
        if rust != script {
            disagree.push(format!("{what}: Rust {rust}, TypeScript {t}\n  {text}"));
        }
        if what == "good" {
            ensure!(
                rust && script,
                "a bundle from the chain does not verify: {t}"
            );
        } else if rust {
            passed += 1; // a change that means nothing: hex case, say
        } else {
            refused += 1;
            ensure!(
                t["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "{what} refused without a reason: {t}"
            );
        }
    }
    eprintln!(
        "{} bundles ({} from the chain): {refused} tampered refused, {passed} tampered still valid, {} disagreements",
        cases.len(),
        good.len(),
        disagree.len()
    );
    ensure!(
        disagree.is_empty(),
        "verdicts differ:\n{}",
        disagree.join("\n")
    );
    ensure!(
        refused >= TAMPERED_EACH,
        "only {refused} tampered bundles refused"
    );
    Ok(())
}

#[test]
fn the_browsers_verifier_reads_the_public_vectors_as_the_rust_one_does() -> Result<()> {
    let Some(dir) = xinlian_client::vectors::dir() else {
        return Ok(());
    };
    let work = tempfile::tempdir()?;
    let cli = verify_cli(work.path())?;
    let cases_path = dir.join("ed25519-speccheck/cases.json");
    let cases: Value = serde_json::from_str(&std::fs::read_to_string(&cases_path)?)?;
    let rust: Vec<usize> = cases
        .as_array()
        .context("cases")?
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            let h = |k: &str| hex::decode(c[k].as_str().unwrap_or_default()).unwrap_or_default();
            let (Ok(key), Ok(sig)) = (
                <[u8; 32]>::try_from(h("pub_key")),
                <[u8; 64]>::try_from(h("signature")),
            ) else {
                return false;
            };
            xinlian_client::crypto::verify_raw(
                &xinlian_genesis::PublicKey(key),
                &h("message"),
                &xinlian_client::crypto::Signature(sig),
            )
            .is_ok()
        })
        .map(|(i, _)| i)
        .collect();
    let ts: Vec<usize> = serde_json::from_str(&node_js(
        &cli,
        &["signatures", &cases_path.display().to_string()],
    )?)?;
    ensure!(
        ts == rust,
        "speccheck: TypeScript accepts {ts:?}, Rust {rust:?}"
    );

    let merkle: Value = serde_json::from_str(&node_js(
        &cli,
        &["merkle", &dir.join("rfc9162").display().to_string()],
    )?)?;
    ensure!(
        merkle["wrong"] == serde_json::json!([]),
        "RFC 9162 vectors misjudged: {merkle}"
    );
    ensure!(
        merkle["good"].as_u64() >= Some(10) && merkle["bad"].as_u64() >= Some(100),
        "too few RFC 9162 vectors read: {merkle}"
    );
    Ok(())
}

#[test]
fn every_node_serves_the_pages_with_a_policy_that_runs_nothing_else() -> Result<()> {
    let c = Consortium::new(BIN)?;
    let node = c.start()?;
    let base = node.client.base_url().to_string();
    let index = ureq::get(&format!("{base}/")).call()?;
    let policy = index
        .headers()
        .get("content-security-policy")
        .context("no Content-Security-Policy")?
        .to_str()?
        .to_string();
    ensure!(
        policy.contains("script-src 'self'") && policy.contains("default-src 'none'"),
        "{policy}"
    );
    let html = index.into_body().read_to_string()?;
    ensure!(
        html.contains("/web/app.js") && !html.contains("<script>"),
        "{html}"
    );
    let app = ureq::get(&format!("{base}/web/app.js")).call()?;
    ensure!(
        app.headers()
            .get("content-type")
            .is_some_and(|t| t.to_str().is_ok_and(|t| t.starts_with("text/javascript"))),
        "app.js content type"
    );
    ensure!(
        app.into_body().read_to_string()?.len() > 10_000,
        "app.js is too small to hold the verifier"
    );
    let missing = ureq::get(&format!("{base}/web/../../etc/passwd")).call();
    ensure!(
        matches!(missing, Err(ureq::Error::StatusCode(404))),
        "{missing:?}"
    );
    let missing = ureq::get(&format!("{base}/web/nothing.js")).call();
    ensure!(
        matches!(missing, Err(ureq::Error::StatusCode(404))),
        "{missing:?}"
    );
    // A label only for a batch on the ledger, and only for a well-formed batch id.
    let label = ureq::get(&format!("{base}/web/label/no-such-batch")).call();
    ensure!(
        matches!(label, Err(ureq::Error::StatusCode(404))),
        "{label:?}"
    );
    let label = ureq::get(&format!("{base}/web/label/%00")).call();
    ensure!(
        matches!(label, Err(ureq::Error::StatusCode(400))),
        "{label:?}"
    );
    Ok(())
}

/// What an inspector reads of a verified provenance answer, as `verify-cli provenance`
/// prints it: holders and amounts, recall, transfers and receipts, transit, sales,
/// consumption, children, and what is missing.
fn shows(p: &Provenance) -> Value {
    let amount = |a: Option<u64>| a.map(|a| a.to_string());
    let batches: serde_json::Map<String, Value> = (p.batches.iter())
        .map(|(name, b)| {
            let mut holders: Vec<(String, Option<String>)> = (b.holders.iter())
                .map(|(p, a)| (p.to_string(), amount(*a)))
                .collect();
            holders.sort();
            let transfers: Vec<Value> = (b.transfers.iter())
                .map(|t| {
                    serde_json::json!([
                        t.from.to_string(),
                        t.to.to_string(),
                        amount(t.amount),
                        t.receipt.map(|r| r.to_string())
                    ])
                })
                .collect();
            let shown = serde_json::json!({
                "holders": holders,
                "recalled": b.state.recalled.map(|r| r.to_string()),
                "transfers": transfers,
                "in_transit": b.in_transit.len(),
                "sold": amount(b.sold),
                "consumed": amount(b.consumed),
                "withheld": b.amounts_withheld,
                "children": b.children,
            });
            (name.clone(), shown)
        })
        .collect();
    serde_json::json!({
        "final_from": p.final_from,
        "missing": p.missing.iter().collect::<Vec<_>>(),
        "batches": batches,
    })
}

fn rust_provenance(g: &Genesis, text: &str) -> Option<Value> {
    let b: ProvenanceBundle = serde_json::from_str(text).ok()?;
    LightClient::verify_provenance_bundle(g.clone(), &b)
        .ok()
        .map(|p| shows(&p))
}

/// The devnet with its sample loaded: the node, its genesis, and a member's client.
struct Sample {
    _dir: tempfile::TempDir,
    node: xinlian_tests::Node,
    manifest: Value,
    genesis_file: std::path::PathBuf,
    genesis: Genesis,
    member: NodeClient,
}

fn sample() -> Result<Sample> {
    let dir = tempfile::tempdir()?;
    let node = xinlian_tests::start_devnet(BIN, dir.path())?;
    wait_until(
        std::time::Duration::from_secs(90),
        "the sample data",
        || dir.path().join("sample.json").exists(),
    )?;
    let manifest = serde_json::from_str(&std::fs::read_to_string(dir.path().join("sample.json"))?)?;
    let genesis_file = genesis_path(dir.path());
    let genesis = Genesis::load(&genesis_file)?;
    let member = node.client.unsigned().signed_by(RequestSigner {
        keyid: "member:sh-market".into(),
        key: keys::read_pem(&signing_key_path(dir.path(), "sh-market"))?,
    });
    Ok(Sample {
        _dir: dir,
        node,
        manifest,
        genesis_file,
        genesis,
        member,
    })
}

/// `good` documents and `each` copies tampered by a byte and `each` structurally, judged
/// by `verify-cli COMMAND` and by `rust` (what a verified document shows, or `None`):
/// every verdict and every showing must agree, every good one verify, and at least
/// `each` tampered ones be refused. Prints the counts under `command`.
fn cross_check(
    s: &Sample,
    good: &[String],
    seed: u64,
    each: usize,
    command: &str,
    rust: impl Fn(&str) -> Option<Value>,
) -> Result<()> {
    let mut rng = Rng(seed);
    let mut cases: Vec<(String, String)> =
        good.iter().map(|b| ("good".into(), b.clone())).collect();
    for i in 0..each {
        let b = &good[i % good.len()];
        let other = &good[rng.below(good.len())];
        cases.push((format!("byte #{i}"), byte_tampered(&mut rng, b)));
        cases.push((
            format!("structure #{i}"),
            structurally_tampered(&mut rng, b, other),
        ));
    }
    let work = tempfile::tempdir()?;
    let cli = verify_cli(work.path())?;
    let list = work.path().join("documents.jsonl");
    std::fs::write(
        &list,
        cases
            .iter()
            .map(|(_, t)| format!("{t}\n"))
            .collect::<String>(),
    )?;
    let ts: Vec<Value> = node_js(
        &cli,
        &[
            command,
            &s.genesis_file.display().to_string(),
            &list.display().to_string(),
        ],
    )?
    .lines()
    .map(serde_json::from_str)
    .collect::<Result<_, _>>()?;
    ensure!(
        ts.len() == cases.len(),
        "{} verdicts for {} documents",
        ts.len(),
        cases.len()
    );
    let (mut refused, mut disagree) = (0, Vec::new());
    for ((what, text), t) in cases.iter().zip(&ts) {
        let r = rust(text);
        let script = (t["verified"] == true).then(|| t["shows"].clone());
        if r != script {
            disagree.push(format!("{what}: Rust {r:?}\n  TypeScript {t}"));
        }
        if what == "good" {
            ensure!(
                r.is_some(),
                "a {command} document from the devnet does not verify: {t}"
            );
        } else if r.is_none() {
            refused += 1;
        }
    }
    eprintln!(
        "{command}: {} documents ({} from the devnet): {refused} tampered refused, {} disagreements",
        cases.len(),
        good.len(),
        disagree.len()
    );
    ensure!(
        disagree.is_empty(),
        "verifiers differ:\n{}",
        disagree.join("\n")
    );
    ensure!(refused >= each, "only {refused} tampered documents refused");
    Ok(())
}

/// Every batch of the devnet's sample (a food chain with a transform, a drug chain with
/// hidden quantities and a recall), traced every way, read by the public (amounts
/// sealed) and by a member (amounts opened: the leaf and signature cover the sealed
/// form), then tampered with: both verifiers reach the same verdict on every bundle, and
/// on every one that verifies, show the same holders, amounts, transfers and recalls.
#[test]
fn the_browsers_verifier_reads_provenance_as_the_rust_one_does() -> Result<()> {
    let s = sample()?;
    let readers: [&NodeClient; 2] = [&s.node.client, &s.member];
    let mut good = Vec::new();
    for batch in s.manifest["batches"].as_array().context("batches")? {
        let batch = batch.as_str().context("a batch name")?;
        for direction in [Direction::Upstream, Direction::Downstream, Direction::Both] {
            for reader in readers {
                let mut light = LightClient::new(s.genesis.clone());
                let (answer, pages) = fetch_provenance(reader, &mut light, batch, direction, None)?;
                let bundle = ProvenanceBundle {
                    format: PROVENANCE_BUNDLE_FORMAT.into(),
                    chain: light.chain(),
                    roster_changes: light.changes_until(answer.final_to + 1),
                    root: batch.to_string(),
                    direction,
                    pages,
                };
                good.push(serde_json::to_string(&bundle)?);
            }
        }
    }
    let openings = |text: &String| -> bool {
        let b: ProvenanceBundle = serde_json::from_str(text).expect("a bundle");
        let max = s.genesis.policy.block_bytes_max as usize;
        (b.pages.iter().flat_map(|p| &p.records))
            .any(|e| EncodedRecord::decode(&e.record.0, max).is_ok_and(|r| r.has_openings()))
    };
    ensure!(
        good.iter().any(openings),
        "the member was given no amount opened: the ledger form goes untested"
    );
    cross_check(
        &s,
        &good,
        0x0bad_cafe_f00d,
        PROVENANCE_TAMPERED_EACH,
        "provenance",
        |t| rust_provenance(&s.genesis, t),
    )
}

/// What a verified credit report shows, as `verify-cli credit` prints it.
fn credit_shows(v: &xinlian_client::credit::VerifiedCredit) -> Value {
    use xinlian_client::state::CommitmentStatus as S;
    let sev = |s: &xinlian_client::record::Severity| format!("{s:?}").to_lowercase();
    let status = |s: &S| match s {
        S::Pending => "pending".to_string(),
        S::Fulfilled => "fulfilled".to_string(),
        S::NotVerifiable => "not_verifiable".to_string(),
        S::Breached(x) => format!("breached_{}", sev(x)),
        S::Repaired(x) => format!("repaired_{}", sev(x)),
    };
    let id = |r: &Option<xinlian_client::record::RecordId>| r.map(|r| r.to_string());
    let g = &v.grade;
    serde_json::json!({
        "name": v.history.name,
        "grade": g.grade.to_string(),
        "score": g.score,
        "reasons": g.reasons.iter().map(|r| serde_json::json!([r.rule, r.points, id(&r.record)])).collect::<Vec<_>>(),
        "caps": g.caps.iter().map(|r| serde_json::json!([r.rule, id(&r.record)])).collect::<Vec<_>>(),
        "commitments": v.history.commitments.iter().map(|c| serde_json::json!([c.at.id.to_string(), status(&c.status)])).collect::<Vec<_>>(),
        "listings": v.history.listings.iter().map(|l| serde_json::json!([l.list, l.added.id.to_string(), l.until.0, l.removed.as_ref().map(|(a, _)| a.id.to_string())])).collect::<Vec<_>>(),
    })
}

/// Every enterprise of the devnet's sample (every outcome, a repaired breach, a reward
/// and a serious-dishonesty listing), its credit report as a member fetches it, and
/// tampered copies: the same verdict from both verifiers on each, and on each that
/// verifies the same grade, score, reasons, caps, statuses and listings.
#[test]
fn the_browsers_verifier_reads_credit_reports_as_the_rust_one_does() -> Result<()> {
    use xinlian_client::credit::{CREDIT_REPORT_FORMAT, CreditReport};
    let s = sample()?;
    let mut light = LightClient::new(s.genesis.clone());
    light.accept_changes(&s.member.roster_changes(1)?.changes)?;
    let mut good = Vec::new();
    let mut grades = std::collections::BTreeSet::new();
    for e in s.manifest["enterprises"]
        .as_array()
        .context("enterprises")?
    {
        let uscc = e["uscc"].as_str().context("a USCC")?;
        let proof = s.member.credit(uscc)?;
        let report = CreditReport {
            format: CREDIT_REPORT_FORMAT.into(),
            chain: light.chain(),
            roster_changes: light.changes_until(proof.checkpoint.header.height + 1),
            proof,
        };
        let verified = LightClient::verify_credit_report(s.genesis.clone(), &report)?;
        grades.insert(verified.grade.grade);
        good.push(serde_json::to_string(&report)?);
    }
    ensure!(
        grades.len() >= 3,
        "the sample's grades are not varied: {grades:?}"
    );
    cross_check(
        &s,
        &good,
        0x00c0_ffee_1234,
        CREDIT_TAMPERED_EACH,
        "credit",
        |t| {
            serde_json::from_str::<CreditReport>(t)
                .ok()
                .and_then(|r| LightClient::verify_credit_report(s.genesis.clone(), &r).ok())
                .map(|v| credit_shows(&v))
        },
    )
}
