//! `xinlian follow`: the verified event stream on a terminal or into a pipe, one line
//! per record, resumed from its cursor after any break.

use std::io::Write;
use std::ops::ControlFlow;

use xinlian_client::events::{EventFilter, EventVerifier, VerifiedEvent};
use xinlian_client::http::{FollowError, NodeClient, follow};
use xinlian_client::ids::Uscc;
use xinlian_client::proof::{LightClient, SignerAuthority};
use xinlian_client::record::Kind;

use crate::{Cli, Failure, local, require_genesis};

pub(crate) struct FollowArgs<'a> {
    pub kinds: &'a [String],
    pub enterprise: Option<&'a str>,
    pub batch: Option<&'a str>,
    pub from: u64,
    pub count: Option<u64>,
}

fn filter(args: &FollowArgs) -> Result<EventFilter, Failure> {
    let kinds = args
        .kinds
        .iter()
        .map(|k| Kind::parse(k).map_err(local))
        .collect::<Result<Vec<_>, _>>()?;
    let enterprise = args.enterprise.map(|u| Uscc(u.to_string()));
    if let Some(u) = &enterprise {
        u.check_format().map_err(local)?;
    }
    if let Some(b) = args.batch {
        xinlian_client::ids::check_batch_id(b).map_err(local)?;
    }
    if enterprise.is_some() && args.batch.is_some() {
        return Err(local("follow an enterprise or a batch, not both"));
    }
    Ok(EventFilter {
        kinds,
        enterprise,
        batch: args.batch.map(str::to_string),
    })
}

fn signer(s: &SignerAuthority) -> String {
    match s {
        SignerAuthority::Member { id, .. } => id.clone(),
        SignerAuthority::Enterprise { uscc, .. } => uscc.to_string(),
        SignerAuthority::Custody { domain, .. } => format!("a custody key for {domain}"),
    }
}

pub(crate) fn run(cli: &Cli, node: &NodeClient, args: &FollowArgs) -> Result<(), Failure> {
    let genesis = require_genesis(cli)?;
    let mut verifier = EventVerifier::new(LightClient::new(genesis), filter(args)?, args.from);
    let mut left = args.count;
    // With --count, the cursor after the last record printed (perhaps mid-block).
    let mut printed_to = None;
    let mut out = std::io::stdout().lock();
    let on_event = |ev: &VerifiedEvent| {
        for r in &ev.records {
            if left == Some(0) {
                break;
            }
            let line = if cli.json {
                serde_json::json!({
                    "cursor": r.ledger_index + 1,
                    "height": ev.height,
                    "ledger_index": r.ledger_index,
                    "id": r.id,
                    "kind": r.record.kind().name(),
                    "signer": r.signer,
                    "record": r.record,
                })
                .to_string()
            } else {
                format!(
                    "{}\t{}\t{}\t{}\t{}",
                    r.ledger_index,
                    ev.height,
                    r.record.kind().name(),
                    r.id,
                    signer(&r.signer)
                )
            };
            // A closed pipe (`xinlian follow | head`) ends the run.
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                return ControlFlow::Break(());
            }
            left = left.map(|n| n - 1);
            printed_to = Some(r.ledger_index + 1);
        }
        if left == Some(0) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let on_break = |e: &xinlian_client::http::ClientError| {
        eprintln!("stream broke ({e}); asking again");
        ControlFlow::Continue(())
    };
    let outcome = follow(node, &mut verifier, on_event, on_break);
    // Resuming from this cursor gives the next record not printed.
    let cursor = match (args.count, printed_to) {
        (Some(_), Some(c)) => c,
        _ => verifier.cursor(),
    };
    eprintln!("cursor {cursor}");
    match outcome {
        Ok(()) => Ok(()),
        Err(FollowError::Refused(e)) => Err(e.into()),
        Err(e) => Err(Failure::Invalid(e.to_string())),
    }
}
