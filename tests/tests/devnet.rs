//! The README's first command: `xinlian-node devnet` creates a consortium, starts it,
//! loads the sample data through the API, and resumes the same chain when run again.

use std::time::{Duration, Instant};

use xinlian_client::state::CommitmentStatus;

const BIN: &str = env!("CARGO_BIN_EXE_xinlian-node-under-test");

/// The loader writes `sample.json` after its last record is final.
fn wait_for_sample(
    node: &xinlian_tests::Node,
    dir: &std::path::Path,
) -> anyhow::Result<xinlian_client::api::Status> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = node.client.status()?;
        if s.ledger_size >= 43 && dir.join("sample.json").exists() {
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
    let status = wait_for_sample(&node, dir.path())?;
    assert_eq!(status.chain_id, "xinlian-devnet");
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

    // A repaired breach stays in history; the status derives from it.
    let retailer = node.client.enterprise(&uscc_of("retailer"))?;
    assert!(matches!(
        retailer.commitments[0].status,
        CommitmentStatus::Repaired(_)
    ));
    assert_eq!(
        (retailer.profile.repaired, retailer.profile.breached_general),
        (1, 0)
    );
    let processor = node.client.enterprise(&uscc_of("processor"))?;
    assert!(processor.profile.on_serious_dishonesty_list);
    // Food chain: bags made from the rice, 800 shipped to and received by the retailer, 50 sold.
    let bags = node.client.batch("rice-pack-2026-001")?;
    assert_eq!(bags.batch.parents, vec!["rice-2026-sj-001".to_string()]);
    let held: Vec<(String, u64)> = bags
        .holders
        .iter()
        .map(|h| (h.holder.to_string(), h.amount))
        .collect();
    assert!(
        held.contains(&(uscc_of("retailer"), 750)) && held.contains(&(uscc_of("processor"), 400)),
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
