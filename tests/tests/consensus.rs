//! A consortium of four validator processes (and an observer) over libp2p on loopback:
//! finality under load, a validator killed with SIGKILL and restarted (it catches up,
//! its blocks equal everyone's, and it votes again), two of four down (nothing is
//! finalized, nothing forks) and one back (progress resumes), an observer that
//! replicates, and a node whose key is not in genesis, which cannot connect.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Result, bail, ensure};
use xinlian_client::ids::Uscc;
use xinlian_client::record::RegisterEntity;
use xinlian_genesis::keys;
use xinlian_tests::{Consortium, Load, Node, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_xinlian-node-under-test");

fn start_all(c: &Consortium, ids: &[&str]) -> Result<Vec<Node>> {
    let mut nodes: Vec<Node> = Vec::new();
    for id in ids {
        let peers: Vec<&Node> = nodes.iter().collect();
        nodes.push(c.start_member(id, &peers)?);
    }
    Ok(nodes)
}

fn height(n: &Node) -> u64 {
    n.client.status().map(|s| s.height).unwrap_or(0)
}

/// Polls until `pred` holds, or fails after `within`.
/// Every block up to `upto` is the same on all `nodes`, and its certificate is valid.
fn same_chain(c: &Consortium, nodes: &[&Node], upto: u64) -> Result<()> {
    for h in 1..=upto {
        let first = nodes[0].client.block(h)?;
        xinlian_client::block::verify_certificate(
            &first.header,
            &first.certificate,
            &c.genesis.validator_set(),
        )?;
        for n in &nodes[1..] {
            let b = n.client.block(h)?;
            ensure!(
                b.hash == first.hash,
                "height {h}: {} vs {}",
                b.hash,
                first.hash
            );
        }
    }
    Ok(())
}

#[test]
fn four_validators_finalize_survive_a_kill_and_the_restarted_one_catches_up_and_votes() -> Result<()>
{
    let c = Consortium::with_nodes(BIN, 4, 1)?;
    let mut nodes = start_all(&c, &["v0", "v1", "v2", "v3", "o0"])?;
    let urls: Vec<String> = nodes[..3]
        .iter()
        .map(|n| n.client.base_url().to_string())
        .collect();
    let load = Load::start(&c, urls)?;
    wait_until(Duration::from_secs(60), "height 5 on every node", || {
        nodes.iter().all(|n| height(n) >= 5)
    })?;

    // kill -9 one validator: the other three (3 of 4 > 2/3) go on finalizing.
    let killed = nodes.remove(3);
    let before = height(&nodes[0]);
    killed.kill_9()?;
    wait_until(Duration::from_secs(60), "progress without v3", || {
        height(&nodes[0]) >= before + 5
    })?;

    // Restarted, it syncs what it missed and rejoins consensus.
    let peers: Vec<&Node> = nodes.iter().collect();
    let restarted = c.start_member("v3", &peers)?;
    wait_until(Duration::from_secs(60), "v3 catching up", || {
        height(&restarted) >= height(&nodes[0]).saturating_sub(1) && height(&restarted) > before + 5
    })?;
    // … and votes again: a certificate made after its return carries its precommit.
    let back_at = height(&restarted);
    let v3 = c
        .genesis
        .validator_set()
        .index_of(c.genesis.member("v3").unwrap().node_key.as_ref().unwrap())
        .unwrap() as u16;
    wait_until(
        Duration::from_secs(60),
        "a certificate signed by v3",
        || {
            let top = height(&nodes[0]);
            (back_at + 1..=top).any(|h| {
                nodes[0]
                    .client
                    .block(h)
                    .is_ok_and(|b| b.certificate.signatures.iter().any(|s| s.validator == v3))
            })
        },
    )?;
    drop(load);
    let all: Vec<&Node> = nodes.iter().chain([&restarted]).collect();
    let top = all.iter().map(|n| height(n)).min().unwrap();
    same_chain(&c, &all, top)?;
    // The observer (which replicated the same chain, checked above) does not vote.
    let o0 = all[3].client.status()?;
    ensure!(o0.node == "o0" && !o0.validator, "{o0:?}");
    Ok(())
}

#[test]
fn two_of_four_down_halts_without_forking_and_one_back_resumes() -> Result<()> {
    let c = Consortium::with_nodes(BIN, 4, 0)?;
    let mut nodes = start_all(&c, &["v0", "v1", "v2", "v3"])?;
    let urls: Vec<String> = nodes[..2]
        .iter()
        .map(|n| n.client.base_url().to_string())
        .collect();
    let load = Load::start(&c, urls)?;
    wait_until(Duration::from_secs(60), "height 3", || {
        nodes.iter().all(|n| height(n) >= 3)
    })?;

    let v3 = nodes.pop().unwrap();
    let v2 = nodes.pop().unwrap();
    drop(v3);
    drop(v2);
    // Let whatever was in flight settle, then watch: two of four is no quorum.
    std::thread::sleep(Duration::from_secs(2));
    let halted: Vec<u64> = nodes.iter().map(height).collect();
    let accepted_then = load.accepted.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(4));
    let still: Vec<u64> = nodes.iter().map(height).collect();
    ensure!(
        halted == still,
        "finalized without a quorum: {halted:?} → {still:?}"
    );
    ensure!(
        load.accepted.load(Ordering::Relaxed) > accepted_then,
        "records kept arriving while halted"
    );
    let refs: Vec<&Node> = nodes.iter().collect();
    same_chain(&c, &refs, *still.iter().min().unwrap())?;

    // One back: three of four, progress resumes.
    let v2 = c.start_member("v2", &refs)?;
    wait_until(Duration::from_secs(90), "progress with v2 back", || {
        height(&nodes[0]) >= still[0] + 3
    })?;
    drop(load);
    let all: Vec<&Node> = nodes.iter().chain([&v2]).collect();
    wait_until(Duration::from_secs(60), "v2 caught up", || {
        height(&v2) >= height(&nodes[0]).saturating_sub(1)
    })?;
    let top = all.iter().map(|n| height(n)).min().unwrap();
    same_chain(&c, &all, top)?;
    Ok(())
}

#[test]
fn a_node_whose_key_is_not_in_genesis_cannot_connect() -> Result<()> {
    let c = Consortium::with_nodes(BIN, 1, 0)?;
    let member = c.start_member("v0", &[])?;
    // An intruder runs a real node with its own genesis: ours plus itself, so that
    // it is willing to talk to our member. Our member's genesis does not know it.
    let dir = tempfile::tempdir()?;
    let intruder = xinlian_tests::start_outsider(&c, BIN, dir.path(), &member)?;
    let intruder_id = intruder.p2p.rsplit('/').next().unwrap().to_string();
    let log = member.log.clone().unwrap();
    let refused = wait_until(
        Duration::from_secs(30),
        "the member to refuse the intruder",
        || {
            std::fs::read_to_string(&log).is_ok_and(|l| {
                l.lines().any(|line| {
                    line.contains("refused an incoming connection") && line.contains(&intruder_id)
                })
            })
        },
    );
    if let Err(e) = refused {
        bail!(
            "{e}; member log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    Ok(())
}

/// A proposal larger than gossipsub's default 64 KiB limit (rust-libp2p#2603 drops
/// such messages silently) still reaches every validator: the limit comes from genesis.
#[test]
fn a_block_over_64_kib_is_proposed_and_finalized_by_all() -> Result<()> {
    let policy = xinlian_genesis::Policy {
        // Long enough for a few hundred records to gather into one block.
        block_interval_ms: 3_000,
        ..xinlian_genesis::Policy::default()
    };
    let c = Consortium::with_policy(BIN, 4, 0, policy)?;
    let nodes = start_all(&c, &["v0", "v1", "v2", "v3"])?;
    let reg = c.agency("registrar")?;
    let sign = |n: u64| {
        let uscc = Uscc::with_check(&format!("91310000{n:09}")).unwrap();
        let key = keys::generate().unwrap();
        reg.sign(RegisterEntity {
            operator: None,
            possession: xinlian_client::crypto::prove_possession(
                &key,
                &reg.chain,
                xinlian_client::crypto::KeyHolder::Enterprise(uscc.as_str()),
            ),
            uscc,
            name: format!("{n:0>200}"),
            key: keys::public_key(&key),
            check_override: None,
        })
    };
    // Signed beforehand: signing (three signatures and a key each, in a debug build)
    // must not spread the submissions over more than one block interval.
    let records: Vec<_> = (1..=300).map(sign).collect();
    // The first record opens a block; the rest gather for the next one or two (on a
    // loaded machine, 300 submissions can outlast a block interval).
    let first = nodes[0].client.submit_and_wait(&sign(0), 30_000)?;
    let mut last = None;
    for r in &records {
        last = Some(nodes[0].client.submit(r)?.id);
    }
    let last = last.unwrap();
    let done = nodes[0].client.record(&last, 30_000)?;
    let last_height = done.height.expect("final within 30 s");
    let first_height = first.height.expect("final within 30 s");
    // The fullest block of those that hold them.
    let mut fullest = (0, 0);
    for h in first_height + 1..=last_height {
        let n = nodes[0].client.block(h)?.records.len();
        if n > fullest.1 {
            fullest = (h, n);
        }
    }
    let (h, in_block) = fullest;
    let bytes: usize = records
        .iter()
        .map(|r| r.canonical_bytes().len())
        .sum::<usize>()
        / records.len()
        * in_block;
    ensure!(
        bytes > 64 << 10,
        "the fullest block, {h}, holds {in_block} records, about {bytes} bytes"
    );
    wait_until(
        Duration::from_secs(30),
        "every validator at that height",
        || nodes.iter().all(|n| height(n) >= h),
    )?;
    let refs: Vec<&Node> = nodes.iter().collect();
    same_chain(&c, &refs, h)
}
