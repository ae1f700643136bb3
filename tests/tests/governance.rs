//! Governance on a running consortium of real node processes: a fifth member is voted
//! in, syncs and votes; an original validator is voted out and can no longer connect
//! or be counted; blocks keep coming throughout; and a client holding only the genesis
//! file verifies records made after both changes, and before them.

use std::time::Duration;

use anyhow::{Result, ensure};
use xinlian_client::block::verify_certificate;
use xinlian_client::ids::Uscc;
use xinlian_genesis::keys;
use xinlian_genesis::scaffold::{genesis_path, node_key_path, signing_key_path};
use xinlian_tests::{Cli, Consortium, Load, Node, json_field, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_xinlian-node-under-test");
const CLI: &str = env!("CARGO_BIN_EXE_xinlian-under-test");

fn cli(c: &Consortium, node: &Node, trust: &str) -> Cli {
    Cli {
        bin: CLI.into(),
        node: node.client.base_url().to_string(),
        genesis: genesis_path(c.path()),
        trust: c.path().join(trust),
    }
}

fn key_arg(c: &Consortium, member: &str) -> String {
    signing_key_path(c.path(), member).display().to_string()
}

fn height(n: &Node) -> u64 {
    n.client.status().map_or(0, |s| s.height)
}

/// Waits until `n` has finalized `h`; blocks come from the load, ~20 a second.
fn reach(n: &Node, h: u64) -> Result<()> {
    wait_until(Duration::from_secs(90), &format!("height {h}"), || {
        height(n) >= h
    })
}

/// The first height at or after `from` (up to the tip) whose certificate carries a
/// precommit of the validator with node key `key`.
fn signed_by(n: &Node, key: &xinlian_genesis::PublicKey, from: u64) -> Option<u64> {
    let tip = height(n);
    (from..=tip).find(|&h| {
        let Ok(b) = n.client.block(h) else {
            return false;
        };
        let Ok(r) = n.client.roster() else {
            return false;
        };
        // The roster in force now is the one in force at `h` for the heights tested.
        let set = r.roster.validator_set();
        set.index_of(key).is_some_and(|i| {
            b.certificate
                .signatures
                .iter()
                .any(|s| usize::from(s.validator) == i)
        })
    })
}

#[test]
fn a_member_is_voted_in_and_another_out_while_blocks_keep_coming() -> Result<()> {
    let c = Consortium::with_nodes(BIN, 4, 0)?;
    let v0 = c.start_member("v0", &[])?;
    let v1 = c.start_member("v1", &[&v0])?;
    let v2 = c.start_member("v2", &[&v0, &v1])?;
    let v3 = c.start_member("v3", &[&v0, &v1, &v2])?;
    // Jiangsu's node runs from the start with the genesis file, though no roster
    // names it yet: members refuse it until the vote takes effect.
    let jiangsu_node = keys::generate()?;
    let jiangsu_agency = keys::generate()?;
    keys::write_pem(&node_key_path(c.path(), "v4"), &jiangsu_node)?;
    keys::write_pem(&signing_key_path(c.path(), "v4"), &jiangsu_agency)?;
    let v4 = c.start_member("v4", &[&v0, &v1, &v2, &v3])?;
    let urls = [&v1, &v2, &v3].map(|n| n.client.base_url().to_string());
    let load = Load::start(&c, urls.to_vec())?;
    reach(&v1, 3)?;
    let before = load.accepted.load(std::sync::atomic::Ordering::Relaxed);

    // 1. Admit Jiangsu: proposed by v0 (its approval counts), approved by v1 and v2.
    let gov = cli(&c, &v1, "trust-gov.json");
    let h = height(&v1);
    let (deadline, e1) = (h + 60, h + 80);
    let out = gov.ok(&[
        "--json",
        "governance",
        "propose",
        "--key",
        &key_arg(&c, "v0"),
        "--reason",
        "Jiangsu joins the regional credit chain",
        "--deadline",
        &deadline.to_string(),
        "--effective",
        &e1.to_string(),
        // Jiangsu proves it holds both keys the change gives it.
        "--new-key",
        &key_arg(&c, "v4"),
        "--new-key",
        &node_key_path(c.path(), "v4").display().to_string(),
        "--wait",
        "add-member",
        "--id",
        "v4",
        "--name",
        "Jiangsu credit centre",
        "--region",
        "320000",
        "--roles",
        "validator,registrar",
        "--power",
        "1",
        "--node-key",
        &keys::public_key(&jiangsu_node).to_hex(),
        "--signing-key",
        &keys::public_key(&jiangsu_agency).to_hex(),
    ]);
    let add = json_field(&out, "id");
    // Jiangsu is no member yet: its vote is refused, naming the signer.
    let refused = gov.run(&[
        "governance",
        "vote",
        &add,
        "--approve",
        "--key",
        &key_arg(&c, "v4"),
    ]);
    ensure!(refused.status.code() == Some(1), "{refused:?}");
    let why = String::from_utf8_lossy(&refused.stderr);
    ensure!(why.contains("neither a consortium member's key"), "{why}");
    for v in ["v1", "v2"] {
        gov.ok(&[
            "governance",
            "vote",
            &add,
            "--approve",
            "--wait",
            "--key",
            &key_arg(&c, v),
        ]);
    }
    let listed = gov.ok(&["--json", "governance", "list", "--status", "passed"]);
    let listed: serde_json::Value = serde_json::from_str(&listed)?;
    let p = &listed["proposals"][0];
    ensure!(p["proposal"]["id"] == add.as_str(), "{listed}");
    ensure!(p["approve_power"] == 3 && p["total_power"] == 4, "{p}");

    // 2. From e1 Jiangsu is a validator: its node syncs and its precommits count.
    reach(&v1, e1 + 2)?;
    wait_until(
        Duration::from_secs(60),
        "Jiangsu's node to sync and vote",
        || {
            v4.client
                .status()
                .is_ok_and(|s| s.validator && s.height >= e1 + 2)
        },
    )?;
    let jiangsu_key = keys::public_key(&jiangsu_node);
    let mut voted = None;
    wait_until(
        Duration::from_secs(60),
        "a certificate with Jiangsu's precommit",
        || {
            voted = signed_by(&v1, &jiangsu_key, e1);
            voted.is_some()
        },
    )?;
    let b = v1.client.block(e1)?;
    ensure!(b.header.validators_hash != c.genesis.validator_set().hash());

    // 3. Remove v0: proposed by v1, approved by v2, v3 and Jiangsu (4 of 5).
    let h = height(&v1);
    let (deadline, e2) = (h + 60, h + 80);
    let out = gov.ok(&[
        "--json",
        "governance",
        "propose",
        "--key",
        &key_arg(&c, "v1"),
        "--reason",
        "agency reorganised",
        "--deadline",
        &deadline.to_string(),
        "--effective",
        &e2.to_string(),
        "--wait",
        "remove-member",
        "v0",
    ]);
    let remove = json_field(&out, "id");
    for v in ["v2", "v3", "v4"] {
        gov.ok(&[
            "governance",
            "vote",
            &remove,
            "--approve",
            "--wait",
            "--key",
            &key_arg(&c, v),
        ]);
    }
    reach(&v1, e2 + 10)?;
    let roster = v1.client.roster()?;
    ensure!(roster.roster.member("v0").is_none() && roster.since == e2);
    let set = roster.roster.validator_set();
    ensure!(set.len() == 4);
    for h in e2..e2 + 10 {
        let b = v1.client.block(h)?;
        verify_certificate(&b.header, &b.certificate, &set)?;
    }
    // v0 learnt the roster with the block before e2, and no member serves it more.
    let v0_height = height(&v0);
    ensure!(v0_height < e2, "v0 reached {v0_height}, removed from {e2}");
    ensure!(!v0.client.status()?.validator);
    // Restarted and dialling everyone, it is refused at connection by each.
    let v0_peer = v0.p2p.rsplit('/').next().unwrap().to_string();
    v0.stop()?;
    let v0 = c.start_member("v0", &[&v1, &v2, &v3, &v4])?;
    let log = v1.log.clone().unwrap();
    wait_until(
        Duration::from_secs(30),
        "v1 to refuse v0's connection",
        || {
            std::fs::read_to_string(&log).is_ok_and(|l| {
                l.lines().any(|line| {
                    line.contains("refused an incoming connection") && line.contains(&v0_peer)
                })
            })
        },
    )?;
    reach(&v1, e2 + 20)?;
    ensure!(height(&v0) < e2, "a removed node synced past its removal");

    // 4. A client holding only genesis: a registration signed by Jiangsu's agency key
    // after both changes, and v0's proposal from before its removal, both verify.
    let fresh = cli(&c, &v2, "trust-fresh.json");
    let uscc = Uscc::with_check("91320000MA1XYA123")?.to_string();
    let enterprise_key = c.path().join("suzhou.pem").display().to_string();
    keys::write_pem(enterprise_key.as_ref(), &keys::generate()?)?;
    let out = fresh.ok(&[
        "--json",
        "submit",
        "--kind",
        "register_entity",
        "--key",
        &key_arg(&c, "v4"),
        "-f",
        &format!("uscc={uscc}"),
        "-f",
        "name=Suzhou Rice Co.",
        "--new-key",
        &enterprise_key,
        "--wait",
    ]);
    let registration = json_field(&out, "id");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    ensure!(v["signer"]["id"] == "v4", "{v}");
    ensure!(v["final_at"].as_u64().unwrap() >= e2, "{v}");
    let old = cli(&c, &v3, "trust-old.json");
    let out = old.ok(&["--json", "verify", &add]);
    let v: serde_json::Value = serde_json::from_str(&out)?;
    ensure!(v["signer"]["id"] == "v0", "{v}");
    // Offline: the bundle carries both roster changes.
    let bundle = c.path().join("jiangsu.bundle.json");
    fresh.ok(&["prove", &registration, "-o", bundle.to_str().unwrap()]);
    let text = std::fs::read_to_string(&bundle)?;
    let b: serde_json::Value = serde_json::from_str(&text)?;
    ensure!(
        b["roster_changes"].as_array().map(Vec::len) == Some(2),
        "{text}"
    );
    let offline = Cli {
        node: "http://127.0.0.1:1".into(),
        ..cli(&c, &v3, "trust-offline.json")
    };
    offline.ok(&["verify", bundle.to_str().unwrap()]);

    let after = load.accepted.load(std::sync::atomic::Ordering::Relaxed);
    ensure!(
        after > before + 100,
        "the load kept being accepted: {before} → {after}"
    );
    drop(load);
    for n in [v0, v1, v2, v3, v4] {
        n.stop()?;
    }
    // A full replay from genesis follows both roster changes to the same state.
    for id in ["v1", "v4"] {
        let report = c.check_member(id)?;
        ensure!(report.contains("equal to a full replay"), "{report}");
    }
    Ok(())
}
