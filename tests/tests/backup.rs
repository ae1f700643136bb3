//! Backup and restore (issue 19): a backup of a running validator taken under load, in
//! two runs (the second appends to the first), restored into a fresh data folder,
//! passes `check`; the node started on it rejoins its consortium, catches up and goes
//! on with it. A backup that is not one, or of another chain, is refused. The chain
//! holds a record whose amount its policy hides: read as a member, the backup
//! restores; read as the public, it would hold only the record's sealed copy, and the
//! backup stops there and says to read as a member.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use xinlian_genesis::scaffold::genesis_path;
use xinlian_tests::{Consortium, Load, Node, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_xinlian-node-under-test");

/// `xinlian-node ARGS`, refused after two minutes; its standard output.
fn node_command(args: &[&str]) -> Result<String> {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait()?.is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            bail!("xinlian-node {args:?} did not finish in two minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "xinlian-node {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_backup_taken_under_load_restores_checks_and_rejoins() -> Result<()> {
    let policy = xinlian_genesis::Policy {
        block_interval_ms: 50,
        trace: xinlian_genesis::TracePolicy::hiding_quantities("hidden"),
        ..xinlian_genesis::Policy::default()
    };
    let c = Consortium::with_policy(BIN, 4, 0, policy)?;
    let mut nodes: Vec<Node> = Vec::new();
    for id in ["v0", "v1", "v2", "v3"] {
        let peers: Vec<&Node> = nodes.iter().collect();
        nodes.push(c.start_member(id, &peers)?);
    }
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| n.client.base_url().to_string())
        .collect();
    let load = Load::start(&c, urls[..3].to_vec())?;
    wait_until(Duration::from_secs(30), "200 records", || {
        nodes[0].client.status().is_ok_and(|s| s.ledger_size >= 200)
    })?;
    let genesis = genesis_path(c.path());
    let genesis = genesis.to_str().context("utf-8 path")?;
    let file = c.path().join("v3.backup");
    let file = file.to_str().context("utf-8 path")?;
    // Two runs under load: the second appends to what the first wrote.
    let first = node_command(&[
        "backup",
        "--node",
        &urls[3],
        "--genesis",
        genesis,
        "--out",
        file,
        "--until",
        "5",
    ])?;
    ensure!(first.contains("blocks 1 to 5"), "first run: {first}");
    wait_until(Duration::from_secs(30), "more records", || {
        nodes[0].client.status().is_ok_and(|s| s.ledger_size >= 400)
    })?;
    // A batch whose amount is on the ledger as a commitment, opened to members only.
    let maker_key = xinlian_genesis::keys::generate()?;
    let (maker, _) = xinlian_tests::register_enterprise(
        &c,
        &nodes[0].client,
        xinlian_client::ids::Uscc::with_check("91310117MA1G0A1B2")?,
        maker_key,
    )?;
    let mut made = xinlian_tests::commission("hidden-1");
    made.domain = "hidden".into();
    made.quantity.amount = xinlian_client::hidden::Amount::hide(100);
    let v = nodes[0].client.submit_and_wait(&maker.sign(made), 10_000)?;
    ensure!(v.height.is_some(), "the hidden commission is final");
    let reader_key = xinlian_genesis::scaffold::signing_key_path(c.path(), "v3");
    let reader_key = reader_key.to_str().context("utf-8 path")?;
    let second = node_command(&[
        "backup",
        "--node",
        &urls[3],
        "--genesis",
        genesis,
        "--out",
        file,
        "--as",
        "member:v3",
        "--reader-key",
        reader_key,
    ])?;
    let backed_up: u64 = second
        .split_whitespace()
        .nth(5)
        .and_then(|h| h.parse().ok())
        .with_context(|| format!("second run: {second}"))?;
    ensure!(backed_up > 5, "second run: {second}");

    // v3 loses its store; the backup goes into a fresh folder.
    let v3 = nodes.pop().context("v3")?;
    v3.stop()?;
    let data = c.data_dir_of("v3");
    std::fs::rename(&data, c.path().join("lost-v3"))?;
    let restored = node_command(&[
        "restore",
        "--genesis",
        genesis,
        "--backup",
        file,
        "--data",
        data.to_str().context("utf-8 path")?,
    ])?;
    ensure!(
        restored.contains(&format!("restored {backed_up} blocks")),
        "restore: {restored}"
    );
    let report = c.check_member("v3")?;
    ensure!(
        report.contains("store OK"),
        "check of the restored store: {report}"
    );
    // Restoring over a store is refused; so is a file that is no backup.
    ensure!(
        node_command(&[
            "restore",
            "--genesis",
            genesis,
            "--backup",
            file,
            "--data",
            data.to_str().unwrap()
        ])
        .is_err_and(|e| e.to_string().contains("already holds a store")),
        "restore over a store"
    );
    // The public is shown the record only as its sealed copy: the backup stops at
    // its block and says why, and what it wrote up to there restores.
    let public = c.path().join("public.backup");
    let public = public.to_str().context("utf-8 path")?;
    let refused = node_command(&[
        "backup",
        "--node",
        &urls[0],
        "--genesis",
        genesis,
        "--out",
        public,
    ]);
    ensure!(
        refused.as_ref().is_err_and(|e| {
            let e = e.to_string();
            e.contains("with its amounts sealed") && e.contains("back up as a member")
        }),
        "the public's backup: {refused:?}"
    );
    let elsewhere = c.path().join("from-public");
    let report = node_command(&[
        "restore",
        "--genesis",
        genesis,
        "--backup",
        public,
        "--data",
        elsewhere.to_str().context("utf-8 path")?,
    ])?;
    ensure!(
        report.contains("restored"),
        "a restore of the public's backup up to the sealed record: {report}"
    );
    let junk = c.path().join("junk.backup");
    std::fs::write(&junk, b"not a backup at all, just some bytes")?;
    let fresh = c.path().join("fresh");
    ensure!(
        node_command(&[
            "restore",
            "--genesis",
            genesis,
            "--backup",
            junk.to_str().unwrap(),
            "--data",
            fresh.to_str().unwrap()
        ])
        .is_err_and(|e| e.to_string().contains("not a xinlian backup")),
        "a file that is no backup"
    );

    // The restored node rejoins and catches up, with the load still running.
    let peers: Vec<&Node> = nodes.iter().collect();
    let v3 = c.start_member("v3", &peers)?;
    let target = nodes[0].client.status()?.height;
    ensure!(target > backed_up, "the consortium went on past the backup");
    wait_until(Duration::from_secs(60), "v3 caught up", || {
        v3.client.status().is_ok_and(|s| s.height >= target)
    })?;
    drop(load);
    let h = v3.client.status()?.height;
    let tip = v3.client.block(h)?;
    let v0_same = nodes[0].client.block(h)?;
    ensure!(tip.hash == v0_same.hash, "v3 and v0 agree at height {h}");
    v3.stop()?;
    for n in nodes {
        n.stop()?;
    }
    let report = c.check_member("v3")?;
    ensure!(
        report.contains("store OK"),
        "check after rejoining: {report}"
    );
    Ok(())
}
