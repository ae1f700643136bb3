//! The README's first command: `xinlian-node devnet` creates a consortium, starts it,
//! loads the sample data through the API, and resumes the same chain when run again;
//! its supervisor keeps the chain going when a validator is killed, restarts that
//! validator, which catches up, and stops every node when it is stopped.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use xinlian_client::http::NodeClient;
use xinlian_client::ids::Uscc;
use xinlian_client::record::RegisterEntity;
use xinlian_client::signer::RecordSigner;
use xinlian_client::state::CommitmentStatus;
use xinlian_genesis::keys;

const BIN: &str = env!("CARGO_BIN_EXE_xinlian-node-under-test");

/// The loader writes `sample.json` after its last record is final.
fn wait_for_sample(client: &NodeClient, dir: &Path) -> anyhow::Result<xinlian_client::api::Status> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = client.status()?;
        if s.ledger_size >= 45 && dir.join("sample.json").exists() {
            return Ok(s);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "sample data not final within 60 s (ledger size {})",
            s.ledger_size
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn devnet_starts_with_sample_data_and_resumes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = xinlian_tests::start_devnet(BIN, dir.path())?;
    let status = wait_for_sample(&node.client, dir.path())?;
    assert_eq!(status.chain_id, "xinlian-devnet");
    // Served over TLS with the devnet's own certificates: its CA vouches for them
    // (node.client trusts it alone), the public roots do not.
    let api = node.client.base_url();
    assert!(api.starts_with("https://127.0.0.1:"), "{api}");
    assert!(
        matches!(
            NodeClient::new(api).status(),
            Err(xinlian_client::http::ClientError::Unreachable { .. })
        ),
        "a client that does not trust the devnet's CA was answered"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("sample.json"))?)?;
    let uscc_of = |slug: &str| {
        manifest["enterprises"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["slug"] == slug)
            .unwrap()["uscc"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // Read as a member of the consortium (the public sees less: tests/tests/privacy.rs).
    let member = node
        .client
        .unsigned()
        .signed_by(xinlian_client::http::RequestSigner {
            keyid: "member:sh-market".into(),
            key: keys::read_pem(&xinlian_genesis::scaffold::signing_key_path(
                dir.path(),
                "sh-market",
            ))?,
        });
    // A repaired breach stays in history; the status derives from it.
    let retailer = member.enterprise(&uscc_of("retailer"))?;
    assert!(matches!(
        retailer.commitments[0].status,
        CommitmentStatus::Repaired(_)
    ));
    let profile = retailer.profile.expect("a member reads the whole record");
    assert_eq!((profile.repaired, profile.breached_general), (1, 0));
    let processor = member.enterprise(&uscc_of("processor"))?;
    assert!(processor.profile.expect("whole").on_serious_dishonesty_list);
    // Grades differ, each verified from genesis as a client would: the listing caps
    // the processor at D, the repair restored the retailer to B.
    let genesis =
        xinlian_genesis::Genesis::load(&xinlian_genesis::scaffold::genesis_path(dir.path()))?;
    let mut light = xinlian_client::proof::LightClient::new(genesis);
    let mut grades = Vec::new();
    for slug in ["pharma", "builder", "retailer", "farm", "processor"] {
        let u = Uscc(uscc_of(slug));
        let (v, _) = xinlian_client::http::fetch_credit(&member, &mut light, &u)?;
        assert_eq!(
            v.grade,
            member.enterprise(u.as_str())?.grade,
            "{slug}: the node's grade"
        );
        // The public reads the same grade, its reasons from records it may not read
        // summed on one line.
        let public = node.client.enterprise(u.as_str())?.grade;
        assert_eq!(
            (public.grade, public.score),
            (v.grade.grade, v.grade.score),
            "{slug}"
        );
        grades.push((slug, v.grade.grade.to_string()));
        if slug == "processor" {
            assert!(
                v.grade.caps.iter().any(|c| c.rule == "serious_list_cap"),
                "{:?}",
                v.grade
            );
        }
        if slug == "retailer" {
            assert!(
                v.grade
                    .reasons
                    .iter()
                    .any(|r| r.detail.contains("repaired by")),
                "{:?}",
                v.grade
            );
        }
    }
    let want: Vec<(&str, String)> = [
        ("pharma", "A"),
        ("builder", "B"),
        ("retailer", "B"),
        ("farm", "C"),
        ("processor", "D"),
    ]
    .into_iter()
    .map(|(s, g)| (s, g.to_string()))
    .collect();
    assert_eq!(grades, want);
    // Food chain: bags made from the rice, 800 shipped to and received by the retailer, 50 sold.
    let bags = node.client.batch("rice-pack-2026-001")?;
    assert_eq!(bags.batch.parents, vec!["rice-2026-sj-001".to_string()]);
    let held: Vec<(String, Option<u64>)> = bags
        .holders
        .iter()
        .map(|h| (h.holder.to_string(), h.amount))
        .collect();
    assert!(
        held.contains(&(uscc_of("retailer"), Some(750)))
            && held.contains(&(uscc_of("processor"), Some(400))),
        "{held:?}"
    );
    // Drug chain: lot 2 recalled.
    assert!(
        node.client
            .batch("amox-2026-L002")?
            .batch
            .recalled
            .is_some()
    );
    hidden_drug_quantities(&node.client, &member, dir.path(), &uscc_of)?;
    node.stop()?;

    let again = xinlian_tests::start_devnet(BIN, dir.path())?;
    let resumed = again.client.status()?;
    assert_eq!(
        (resumed.height, resumed.tip_hash),
        (status.height, status.tip_hash),
        "the same chain, not a new one"
    );
    Ok(())
}

/// The sample's policy hides drug quantities (docs/privacy.md § Trace events): the
/// public reads who has held lot 1 and verifies its chain of custody, not how much;
/// a member reads every amount; the hospital reads its own holding and its events'
/// amounts, not the others' holdings. Every answer verifies from genesis.
fn hidden_drug_quantities(
    public: &NodeClient,
    member: &NodeClient,
    dir: &Path,
    uscc_of: &dyn Fn(&str) -> String,
) -> anyhow::Result<()> {
    use xinlian_client::provenance::Direction;
    let lot = "amox-2026-L001";
    let amounts = |c: &NodeClient| -> anyhow::Result<Vec<(String, Option<u64>)>> {
        let v = c.batch(lot)?;
        Ok(v.holders
            .iter()
            .map(|h| (h.holder.to_string(), h.amount))
            .collect())
    };
    let (pharma, distributor, hospital) = (
        uscc_of("pharma"),
        uscc_of("distributor"),
        uscc_of("hospital"),
    );
    let mut want = vec![
        (pharma.clone(), Some(3000)),
        (distributor.clone(), Some(1700)),
        (hospital.clone(), Some(280)),
    ];
    want.sort();
    let sorted = |mut v: Vec<(String, Option<u64>)>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(amounts(member)?),
        want,
        "a member reads every holding"
    );
    let none: Vec<_> = want.iter().map(|(u, _)| (u.clone(), None)).collect();
    assert_eq!(
        sorted(amounts(public)?),
        none,
        "the public reads the holders only"
    );
    let hospital_reader = public
        .unsigned()
        .signed_by(xinlian_client::http::RequestSigner {
            keyid: format!("enterprise:{hospital}"),
            key: keys::read_pem(&xinlian_devnet::enterprise_key_path(dir, "hospital"))?,
        });
    let own: Vec<_> = want
        .iter()
        .map(|(u, a)| (u.clone(), if *u == hospital { *a } else { None }))
        .collect();
    assert_eq!(
        sorted(amounts(&hospital_reader)?),
        own,
        "the hospital reads its own"
    );

    let genesis = xinlian_genesis::Genesis::load(&xinlian_genesis::scaffold::genesis_path(dir))?;
    let trace = |c: &NodeClient| -> anyhow::Result<xinlian_client::provenance::VerifiedBatch> {
        let mut light = xinlian_client::proof::LightClient::new(genesis.clone());
        let (p, _) =
            xinlian_client::http::fetch_provenance(c, &mut light, lot, Direction::Upstream, None)?;
        Ok(p.batches[lot].clone())
    };
    let seen = trace(public)?;
    assert!(seen.amounts_withheld);
    let custody: Vec<(String, String, Option<u64>, bool)> = (seen.transfers.iter())
        .map(|t| {
            (
                t.from.to_string(),
                t.to.to_string(),
                t.amount,
                t.receipt.is_some(),
            )
        })
        .collect();
    assert_eq!(
        custody,
        vec![
            (pharma.clone(), distributor.clone(), None, true),
            (distributor.clone(), hospital.clone(), None, true),
        ],
        "the public proves the chain of custody, amounts withheld"
    );
    assert_eq!(seen.sold, None);
    let full = trace(member)?;
    assert!(!full.amounts_withheld);
    assert_eq!(full.transfers[1].amount, Some(300));
    assert_eq!(full.sold, Some(20));
    assert_eq!(full.created_amount(), Some(5000));
    // On the ledger: commitments only; the hospital's own events come to it opened.
    let ship = &seen
        .events
        .iter()
        .find(|e| e.record.kind().name() == "ship")
        .unwrap()
        .id;
    let public_ship = public.record(ship, 0)?;
    assert!(
        public_ship.canonical_hex.len() < member.record(ship, 0)?.canonical_hex.len(),
        "the public's form has no openings"
    );
    let body = serde_json::to_value(&public_ship.record.envelope.body)?;
    assert!(
        body["ship"]["quantity"]["amount"]["sealed"].is_string(),
        "{body}"
    );
    let epcis = public.batch_epcis(lot)?.to_string();
    assert!(epcis.contains("\"uom\":\"H87\""), "{epcis}");
    assert!(
        !epcis.contains("\"quantity\":"),
        "the export shows no hidden amount"
    );
    let members = member.batch_epcis(lot)?.to_string();
    assert!(members.contains("\"quantity\":2000"), "{members}");
    Ok(())
}

/// A devnet process with its stdin (for commands) and its stdout lines; stopped on
/// drop (SIGTERM, then SIGKILL), and its nodes with it.
struct Devnet {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every line read so far, for failure messages.
    seen: Vec<String>,
}

impl Devnet {
    /// `xinlian-node devnet --dir DIR --port 0`, restarting exited nodes after
    /// `restart_ms`.
    fn start(dir: &Path, restart_ms: u64) -> anyhow::Result<Devnet> {
        let mut child = Command::new(BIN)
            .arg("devnet")
            .arg("--dir")
            .arg(dir)
            .arg("--port")
            .arg("0")
            .env(
                "RUST_LOG",
                std::env::var("XINLIAN_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env("XINLIAN_DEVNET_RESTART_MS", restart_ms.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("devnet | {line}");
                let _ = tx.send(line);
            }
        });
        Ok(Devnet {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
        })
    }

    /// The next line (skipping others) that `pred` accepts, within `within`.
    fn expect_line(
        &mut self,
        within: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + within;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => anyhow::bail!(
                    "no line {what} within {within:?}; the devnet printed:\n{}",
                    self.seen.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => anyhow::bail!(
                    "the devnet's stdout closed before a line {what}; it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Lines printed so far without waiting.
    fn drain(&mut self) -> Vec<String> {
        let new: Vec<String> = self.lines.try_iter().collect();
        self.seen.extend(new.iter().cloned());
        new
    }

    fn command(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM (the devnet's Ctrl-C path) and waits for it to exit.
    fn stop(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        signal(self.child.id(), "-TERM")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(Instant::now() < deadline, "devnet did not stop within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.stop();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()?;
    anyhow::ensure!(status.success(), "kill {sig} {pid} failed");
    Ok(())
}

/// `  NAME  ROLE  API URL  pid PID` from the devnet's list of nodes.
struct Listed {
    name: String,
    api: String,
    pid: u32,
}

fn listed(line: &str) -> Option<Listed> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |w: &str| {
        let i = words.iter().position(|x| *x == w)?;
        words.get(i + 1).copied()
    };
    Some(Listed {
        name: words.first()?.to_string(),
        api: after("API")?.to_string(),
        pid: after("pid")?.parse().ok()?,
    })
}

/// A registration by the market regulator: any record makes the chain cut a block.
fn registration(
    registrar: &RecordSigner,
    n: u64,
) -> anyhow::Result<xinlian_client::record::SignedRecord> {
    let uscc = Uscc::with_check(&format!("91310000{n:09}"))?;
    let key = keys::generate()?;
    Ok(registrar.sign(RegisterEntity {
        operator: None,
        possession: xinlian_client::crypto::prove_possession(
            &key,
            &registrar.chain,
            xinlian_client::crypto::KeyHolder::Enterprise(uscc.as_str()),
        ),
        uscc,
        name: format!("supervisor test enterprise {n}"),
        key: keys::public_key(&key),
        check_override: None,
    }))
}

fn height(client: &NodeClient) -> Option<u64> {
    client.status().ok().map(|s| s.height)
}

#[test]
fn devnet_survives_a_killed_validator_and_restarts_it() -> anyhow::Result<()> {
    const VICTIM: &str = "js-credit";
    let dir = tempfile::tempdir()?;
    // A restart delay long enough to see the chain move while the validator is down.
    let mut devnet = Devnet::start(dir.path(), 5_000)?;
    let announced = devnet.expect_line(Duration::from_secs(60), "announcing the API", |l| {
        l.starts_with("xinlian-node: API listening on ")
    })?;
    let api0 = announced.trim_start_matches("xinlian-node: API listening on ");
    assert!(api0.starts_with("https://127.0.0.1:"), "{announced}");
    let client = |url: &str| -> anyhow::Result<NodeClient> {
        Ok(NodeClient::new(url).trusting_file(&dir.path().join("tls").join("ca.pem"))?)
    };
    let node0 = client(api0)?;
    wait_for_sample(&node0, dir.path())?;
    let mut nodes = Vec::new();
    devnet.expect_line(Duration::from_secs(60), "listing the nodes", |l| {
        l.starts_with("xinlian devnet: 4 validators and 1 observer(s)")
    })?;
    while nodes.len() < 5 {
        let line = devnet.expect_line(Duration::from_secs(10), "listing a node", |l| {
            listed(l).is_some()
        })?;
        nodes.push(listed(&line).expect("checked"));
    }
    let hint = devnet.expect_line(Duration::from_secs(10), "about the supervisor", |l| {
        l.starts_with("supervisor: kill a validator")
    })?;
    assert!(hint.contains("status, stop NAME, start NAME"), "{hint}");
    let victim = nodes
        .iter()
        .find(|n| n.name == VICTIM)
        .expect("js-credit runs");
    let victim_api = client(&victim.api)?;
    assert!(
        height(&victim_api).is_some(),
        "{VICTIM} answers before the kill"
    );

    signal(victim.pid, "-9")?;
    let exited = devnet.expect_line(Duration::from_secs(10), "reporting the exit", |l| {
        l.starts_with(&format!("node {VICTIM} exited"))
    })?;
    assert!(
        exited.contains("signal: 9") && exited.contains(&format!("{VICTIM}.log")),
        "{exited}"
    );
    assert!(devnet.running(), "the devnet carries on");

    // Three of four validators finalize on their own.
    let genesis = xinlian_genesis::Genesis::load(&dir.path().join("genesis.toml"))?;
    let registrar = RecordSigner {
        key: keys::read_pem(&dir.path().join("keys/sh-market.signing.pem"))?,
        chain: genesis.hash(),
    };
    let before = node0.status()?.height;
    for n in 1..=3 {
        let v = node0.submit_and_wait(&registration(&registrar, n)?, 15_000)?;
        anyhow::ensure!(v.height.is_some(), "record {n} not final within 15 s");
    }
    let moved = node0.status()?.height;
    assert!(
        moved > before,
        "height {before} → {moved} while {VICTIM} is down"
    );
    assert!(
        height(&victim_api).is_none()
            && !devnet
                .drain()
                .iter()
                .any(|l| l.starts_with(&format!("restarting {VICTIM}"))),
        "{VICTIM} was back before the chain moved (the test's restart delay is too short)"
    );

    // The supervisor brings it back on the same API port, as a new process.
    devnet.expect_line(Duration::from_secs(15), "restarting it", |l| {
        l.starts_with(&format!("restarting {VICTIM} …"))
    })?;
    let again = devnet.expect_line(Duration::from_secs(45), "saying it runs again", |l| {
        l.starts_with(&format!("node {VICTIM} is running again: pid "))
    })?;
    let new_pid: u32 = again
        .split_whitespace()
        .nth(6)
        .and_then(|p| p.trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("a pid in: {again}"));
    assert_ne!(new_pid, victim.pid);
    xinlian_tests::wait_until(Duration::from_secs(30), "the restarted API", || {
        height(&victim_api).is_some()
    })?;
    devnet.command("status")?;
    let status = devnet.expect_line(Duration::from_secs(10), "with its status", |l| {
        l.split_whitespace().next() == Some(VICTIM) && l.contains("running")
    })?;
    assert!(status.contains(&format!("pid {new_pid} ")), "{status}");

    // It catches up with node 0, and goes on with the others.
    xinlian_tests::wait_until(
        Duration::from_secs(60),
        "the restarted node to catch up",
        || height(&victim_api).is_some_and(|h| h >= moved),
    )?;
    let v = node0.submit_and_wait(&registration(&registrar, 4)?, 15_000)?;
    let last = v.height.expect("final within 15 s");
    xinlian_tests::wait_until(
        Duration::from_secs(30),
        "the restarted node to follow",
        || height(&victim_api).is_some_and(|h| h >= last),
    )?;
    assert!(devnet.running(), "the devnet still runs");

    // Stopping the devnet stops every node.
    let status = devnet.stop()?;
    assert!(status.success(), "devnet exit: {status}");
    for n in &nodes {
        assert!(
            height(&client(&n.api)?).is_none(),
            "node {} still answers after the devnet stopped",
            n.name
        );
    }
    Ok(())
}

/// `xinlian credit` on the devnet's sample: the verified grade and reasons, claims of
/// absence proven or refuted by name, an offline report that `xinlian verify` checks
/// with no node, its zh/en page with the QR payload, and a proven unregistered USCC.
#[test]
fn the_credit_command_verifies_grades_claims_and_reports_offline() -> anyhow::Result<()> {
    const CLI: &str = env!("CARGO_BIN_EXE_xinlian-under-test");
    let dir = tempfile::tempdir()?;
    let node = xinlian_tests::start_devnet(BIN, dir.path())?;
    wait_for_sample(&node.client, dir.path())?;
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("sample.json"))?)?;
    let uscc = |slug: &str| -> String {
        manifest["enterprises"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["slug"] == slug)
            .unwrap()["uscc"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let genesis = xinlian_genesis::scaffold::genesis_path(dir.path());
    let trust = dir.path().join("trust.json");
    let keys = dir.path().join("keys");
    let cli_as = |reader: Option<(String, std::path::PathBuf)>, args: &[&str]| {
        let mut cmd = Command::new(CLI);
        if let Some((keyid, key)) = reader {
            cmd.arg("--as").arg(keyid).arg("--reader-key").arg(key);
        }
        cmd.args(args)
            .env("XINLIAN_NODE", node.client.base_url())
            .env("XINLIAN_CA", dir.path().join("tls").join("ca.pem"))
            .env("XINLIAN_GENESIS", &genesis)
            .env("XINLIAN_TRUST", &trust)
            .output()
            .expect("run the CLI")
    };
    // An agency reads complete credit records as a member; the public may not.
    let agency = || {
        Some((
            "member:sh-market".to_string(),
            keys.join("sh-market.signing.pem"),
        ))
    };
    let cli = |args: &[&str]| cli_as(agency(), args);
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let today = xinlian_client::when::Date::of_ms_beijing(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64,
    );
    let year_ago = xinlian_client::when::Date(today.0 - 365);

    // The processor: D, capped by its listing; the claims about it are refuted by name.
    let p = uscc("processor");
    let o = cli(&[
        "credit",
        &p,
        "--no-serious-breach",
        &format!("{year_ago}:{}", xinlian_client::when::Date(today.0 - 1)),
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("grade D") && out.contains("serious_list_cap"),
        "{out}"
    );
    assert!(out.contains("claim refused"), "{out}");

    let o = cli_as(None, &["credit", &p]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("not_entitled") && out.contains("credit report"),
        "{out}"
    );

    // The retailer makes its own report (it reads all its records): B after its
    // repair; the claims hold; a report and its page.
    let r = uscc("retailer");
    let report = dir.path().join("retailer-credit.json");
    let page = dir.path().join("retailer-credit.html");
    let retailer = Some((
        format!("enterprise:{r}"),
        keys.join("enterprises").join("retailer.pem"),
    ));
    let o = cli_as(
        retailer,
        &[
            "credit",
            &r,
            "--report",
            report.to_str().unwrap(),
            "--html",
            page.to_str().unwrap(),
            "--not-listed-on",
            &xinlian_client::when::Date(today.0 - 1).to_string(),
        ],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("grade B") && out.contains("repaired by"),
        "{out}"
    );
    assert!(out.contains("VERIFIED: by header"), "{out}");
    let html = std::fs::read_to_string(&page)?;
    assert!(
        html.contains("专用信用报告") && html.contains("<svg"),
        "the page has its QR code"
    );
    assert!(
        html.contains(&format!("uscc={r}")),
        "the QR payload names the enterprise"
    );

    // The report verifies with no node at all (a dead address), as a fresh client.
    let o = Command::new(CLI)
        .args(["verify", report.to_str().unwrap()])
        .env("XINLIAN_NODE", "http://127.0.0.1:9")
        .env("XINLIAN_GENESIS", &genesis)
        .env("XINLIAN_TRUST", dir.path().join("fresh-trust.json"))
        .output()?;
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains(&format!("VERIFIED credit record of {r}")) && out.contains("grade B"),
        "{out}"
    );
    // A record dropped from the report: refused, saying what is wrong.
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report)?)?;
    v["proof"]["records"].as_array_mut().unwrap().remove(1);
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, serde_json::to_vec(&v)?)?;
    let o = Command::new(CLI)
        .args(["verify", tampered.to_str().unwrap()])
        .env("XINLIAN_NODE", "http://127.0.0.1:9")
        .env("XINLIAN_GENESIS", &genesis)
        .env("XINLIAN_TRUST", dir.path().join("fresh-trust.json"))
        .output()?;
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("records are missing or extra"), "{out}");

    // An unregistered USCC: proven absent.
    let nobody = Uscc::with_check("91310000MA1Y99999")?.to_string();
    let o = cli_as(None, &["credit", &nobody]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("VERIFIED ABSENT"), "{out}");
    node.stop()?;
    Ok(())
}
