//! `xinlian trace` and `xinlian recall-reach`: a batch's provenance upstream or
//! downstream, every page verified against genesis, optionally written as a bundle.

use std::path::Path;

use xinlian_client::http::{NodeClient, fetch_provenance};
use xinlian_client::provenance::{
    Direction, PROVENANCE_BUNDLE_FORMAT, Provenance, ProvenanceBundle,
};

use crate::report_text as report;
use crate::verify::{fetch_failure, load_light, save_light};
use crate::{Cli, Failure, print, require_genesis, write_atomically};

/// `trace` and `recall-reach`: fetch and verify every page, optionally bundle them,
/// print, and fail (exit 1) when part of the answer could not be verified.
pub(crate) fn run(
    cli: &Cli,
    node: &NodeClient,
    batch: &str,
    direction: Direction,
    depth: Option<u32>,
    bundle: Option<&Path>,
) -> Result<(), Failure> {
    let g = require_genesis(cli)?;
    let (mut light, path) = load_light(cli, g)?;
    let seen = light.trusted().map(|t| t.header.height);
    let (answer, pages) =
        fetch_provenance(node, &mut light, batch, direction, depth).map_err(fetch_failure)?;
    save_light(&light, path);
    if let Some(seen) = seen.filter(|s| *s > answer.final_from) {
        eprintln!(
            "warning: the answer is as of height {}, but this client has already verified height {seen}: later events may be missing from it",
            answer.final_from
        );
    }
    if let Some(out) = bundle {
        let b = ProvenanceBundle {
            format: PROVENANCE_BUNDLE_FORMAT.into(),
            chain: light.chain(),
            roster_changes: light.changes_until(answer.final_to + 1),
            root: batch.to_string(),
            direction,
            pages,
        };
        write_atomically(
            out,
            serde_json::to_string(&b).expect("serialises").as_bytes(),
        )?;
    }
    print_provenance(cli, &answer)?;
    if let Some(out) = bundle {
        eprintln!("bundle written to {}", out.display());
    }
    Ok(())
}

/// Prints a verified provenance answer (as a recall reach when downstream), and
/// fails when it is partial.
pub(crate) fn print_provenance(cli: &Cli, answer: &Provenance) -> Result<(), Failure> {
    if answer.direction == Direction::Downstream {
        print(
            cli.json,
            &xinlian_client::report::recall_reach(answer),
            || report::recall_reach_text(answer),
        );
    } else {
        print(cli.json, answer, || report::trace_text(answer));
    }
    if answer.is_complete() {
        Ok(())
    } else {
        Err(Failure::Invalid(format!(
            "the answer is partial: {} batches could not be fetched within the bounds",
            answer.missing.len()
        )))
    }
}
