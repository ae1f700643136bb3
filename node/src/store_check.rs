//! Full verification of a store: replay every block from genesis in memory, checking
//! certificates, parent links, records and header fields, then compare the replayed
//! derived state with the stored one. What `xinlian-node check` runs.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use xinlian_client::block::verify_certificate;
use xinlian_genesis::Genesis;

use crate::store::Store;
use xinlian_core::chain::{Tip, execute_block};
use xinlian_core::execute::Consortium;

pub fn check_store(genesis: Genesis, path: &Path) -> Result<String> {
    let mut c = Consortium::new(genesis);
    // A check never creates a store where there is none (a mistyped folder).
    ensure!(
        ["kv", "anchor", "history"]
            .iter()
            .any(|f| path.join(f).exists()),
        "{} holds no store",
        path.display()
    );
    let (store, tip) = Store::open(path, &c)?;
    let mut state: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut t = Tip::genesis(&c);
    let bar = crate::backup::progress(tip.height, "check");
    for h in 1..=tip.height {
        let block = store
            .block(h)?
            .with_context(|| format!("block {h} missing"))?;
        let cert = store
            .certificate(h)?
            .with_context(|| format!("certificate {h} missing"))?;
        verify_certificate(&block.header, &cert, &c.validators)
            .with_context(|| format!("certificate of block {h}"))?;
        if let Some((level, index, what)) = store.damaged_nodes(h)?.into_iter().next() {
            anyhow::bail!(
                "Merkle node ({level}, {index}) of block {h} is damaged: {what} (a start of the node writes it again from the records)"
            );
        }
        let ex =
            execute_block(&state, &c, &t, block).with_context(|| format!("replaying block {h}"))?;
        for (k, v) in ex.writes {
            match v {
                Some(v) => state.insert(k, v),
                None => state.remove(&k),
            };
        }
        t = ex.tip;
        if ex.header.next_roster_hash != c.roster_hash {
            c = xinlian_core::governance::consortium_at(&state, &c.genesis, h + 1)
                .with_context(|| format!("roster announced by block {h}"))?;
            ensure!(
                c.roster_hash == ex.header.next_roster_hash && c.since == h + 1,
                "block {h} announces roster {} but replay gives {}",
                ex.header.next_roster_hash,
                c.roster_hash
            );
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    ensure!(
        t == tip,
        "replay ends at {} ({}) but the store's tip is {} ({})",
        t.height,
        t.hash,
        tip.height,
        tip.hash
    );
    let stored = store.state_all()?;
    if stored != state {
        let differing = stored
            .keys()
            .chain(state.keys())
            .find(|k| stored.get(*k) != state.get(*k))
            .cloned()
            .unwrap_or_default();
        anyhow::bail!(
            "stored derived state differs from a full replay (first differing key {})",
            hex::encode(differing)
        );
    }
    let marks = store.marks();
    let cut = match store.cut_at_open() {
        0 => String::new(),
        n => format!("; removed {n} bytes of history an interrupted commit had appended"),
    };
    Ok(format!(
        "store OK: {} blocks, {} records, ledger root {}, state hash {} ({} entries) equal to a full replay; acknowledged height {} and signing mark {} in the anchor{cut}",
        tip.height,
        tip.frontier.size(),
        tip.frontier.root(),
        tip.state_hash,
        state.len(),
        marks.acknowledged,
        marks.signed
    ))
}
