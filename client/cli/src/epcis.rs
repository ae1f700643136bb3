//! `xinlian epcis …`: a batch's verified events exported as a GS1 EPCIS 2.0 document,
//! and a document imported as signed records, submitted only when the node would
//! accept every one. A dry run gives the node no signed record: it checks here only.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use xinlian_client::checks::check_stateless;
use xinlian_client::epcis;
use xinlian_client::http::{NodeClient, fetch_provenance};
use xinlian_client::ids::Uscc;
use xinlian_client::provenance::Direction;
use xinlian_client::record::{Body, EncodedRecord, RecordId, SignedRecord};

use crate::submit::record_signer;
use crate::verify::{fetch_failure, load_light, save_light};
use crate::{
    Cli, Failure, load_genesis, local, print, read_file, require_genesis, write_atomically,
};

#[derive(Subcommand)]
pub(crate) enum EpcisCmd {
    /// Write a batch's events, each verified first (needs --genesis), as an EPCISDocument.
    Export {
        batch: String,
        /// Also every batch upstream of it.
        #[arg(long)]
        upstream: bool,
        #[arg(short = 'o', long = "out")]
        out: Option<PathBuf>,
    },
    /// Map an EPCISDocument to records signed with KEY, have the node check them all in
    /// order, and submit them only if every one would be accepted (with --dry-run, map
    /// and check here only: the node is given no signed record).
    Import(ImportArgs),
}

// The arguments of `epcis import` (its help is the variant's).
#[derive(Args)]
pub(crate) struct ImportArgs {
    file: PathBuf,
    #[arg(long)]
    key: PathBuf,
    /// The importing enterprise's USCC, or `custody:KEY` where it imports under a
    /// custody key (matches its receipts to shipments).
    #[arg(long)]
    uscc: Option<String>,
    /// Trace domain for new batches whose events do not name one.
    #[arg(long)]
    domain: Option<String>,
    /// A party URI the document uses (an SGLN, a PGLN) and the USCC it stands for.
    #[arg(long = "party", value_name = "URI=USCC")]
    parties: Vec<String>,
    /// Map and check the records here only (fields, identifiers, signatures); give the
    /// node nothing. The node's check of the ledger's state needs signed records, which
    /// a node could submit later, so only a real import asks for it.
    #[arg(long)]
    dry_run: bool,
}

pub(crate) fn run(cli: &Cli, node: &NodeClient, cmd: &EpcisCmd) -> Result<(), Failure> {
    match cmd {
        EpcisCmd::Export {
            batch,
            upstream,
            out,
        } => export(cli, node, batch, *upstream, out.as_deref()),
        EpcisCmd::Import(args) => import(cli, node, args),
    }
}

/// `epcis export`: the batch's (and with `upstream` every upstream batch's) verified
/// events as one document, to `out` or stdout.
fn export(
    cli: &Cli,
    node: &NodeClient,
    batch: &str,
    upstream: bool,
    out: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let g = require_genesis(cli)?;
    let (mut light, path) = load_light(cli, g)?;
    let depth = if upstream { None } else { Some(0) };
    let (answer, _) = fetch_provenance(node, &mut light, batch, Direction::Upstream, depth)
        .map_err(fetch_failure)?;
    save_light(&light, path);
    if upstream && !answer.is_complete() {
        return Err(Failure::Invalid(format!(
            "the provenance is partial: {} batches could not be fetched",
            answer.missing.len()
        )));
    }
    let batches: Vec<_> = if upstream {
        answer.batches.values().collect()
    } else {
        answer.batches.get(batch).into_iter().collect()
    };
    let now = xinlian_client::when::EventTime {
        unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
        offset_minutes: 480,
    };
    let doc = serde_json::to_string_pretty(&epcis::export(&batches, now)).expect("serialises");
    match out {
        Some(p) => write_atomically(p, doc.as_bytes())?,
        None => {
            use std::io::Write;
            // A closed pipe (`… | head`) is the reader's choice, not an error.
            let _ = writeln!(std::io::stdout().lock(), "{doc}");
        }
    }
    Ok(())
}

/// `epcis import`: map the document, have the node check every record in order, and
/// unless `--dry-run` submit them all (none when any would be refused).
fn import(cli: &Cli, node: &NodeClient, args: &ImportArgs) -> Result<(), Failure> {
    let file = &args.file;
    let doc: serde_json::Value = serde_json::from_str(&read_file(file)?)
        .map_err(|e| Failure::Invalid(format!("{} is not JSON: {e}", file.display())))?;
    let mut opts = import_options(args)?;
    let genesis = load_genesis(cli.genesis.as_deref())?;
    // Amounts the policy in force hides are opened before signing: the node's roster
    // says which; offline (a dry run), genesis's.
    opts.trace = match (node.roster(), &genesis) {
        (Ok(r), _) => r.roster.policy.trace,
        (Err(_), Some(g)) => g.policy.trace.clone(),
        (Err(e), None) => return Err(e.into()),
    };
    let signer = record_signer(node, genesis.as_ref(), &args.key)?;
    let importer = (args
        .uscc
        .as_deref()
        .map(str::parse::<xinlian_client::party::Party>))
    .transpose()
    .map_err(|e| Failure::Invalid(format!("--uscc: {e}")))?;
    let records = match epcis::import(&doc, &opts, &signer, importer.as_ref(), Some(node)) {
        Ok(r) => r,
        Err(errors) => {
            print(cli.json, &errors, || {
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            return Err(Failure::Invalid(format!(
                "{} cannot be imported: {} errors; nothing was submitted",
                file.display(),
                errors.len()
            )));
        }
    };
    let (events, recs): (Vec<usize>, Vec<SignedRecord>) = records.into_iter().unzip();
    if args.dry_run {
        return dry_run(cli, &signer.chain, &events, &recs);
    }
    check_all(cli, node, &events, &recs)?;
    let ids: Vec<RecordId> = recs.iter().map(SignedRecord::id).collect();
    submit_all(node, &events, &recs)?;
    let last = node.record(ids.last().expect("at least one"), 30_000)?;
    print(cli.json, &ids, || {
        format!(
            "{} records submitted; the last is {}",
            ids.len(),
            match last.height {
                Some(h) => format!("final at height {h}"),
                None => "still pending".into(),
            }
        )
    });
    Ok(())
}

/// `epcis import --dry-run`: the stateless checks every node applies, here, on the
/// mapped records; they never leave this process. (A node's check of them against the
/// ledger's state would need them signed, and a node holding signed records could
/// submit them whenever it liked.)
fn dry_run(
    cli: &Cli,
    chain: &xinlian_client::genesis::Hash32,
    events: &[usize],
    recs: &[SignedRecord],
) -> Result<(), Failure> {
    let refused: Vec<String> = recs
        .iter()
        .zip(events)
        .filter_map(|(r, ev)| {
            let checked = check_stateless(&EncodedRecord::new(r.clone()), chain);
            checked
                .err()
                .map(|e| format!("event {ev}: {} record: {e}", r.kind().name()))
        })
        .collect();
    if !refused.is_empty() {
        print(cli.json, &refused, || refused.join("\n"));
        return Err(Failure::Invalid(format!(
            "{} of {} records fail the checks every node applies; nothing was sent",
            refused.len(),
            recs.len()
        )));
    }
    let events_n = events.iter().collect::<BTreeSet<_>>().len();
    let bodies: Vec<&Body> = recs.iter().map(|r| &r.envelope.body).collect();
    let summary = serde_json::json!({
        "events": events_n,
        "records": bodies,
        "checked_by_node": false,
    });
    print(cli.json, &summary, || {
        format!(
            "{events_n} events map to {} records, each passing the checks every node applies \
             (checked here; nothing was sent to the node). Whether the ledger's state \
             accepts them is checked by the node when importing without --dry-run, before \
             anything is submitted.",
            recs.len()
        )
    });
    Ok(())
}

/// The import options of `--domain` and the `--party URI=USCC` mappings.
fn import_options(args: &ImportArgs) -> Result<epcis::ImportOptions, Failure> {
    let mut opts = epcis::ImportOptions {
        domain: args.domain.clone(),
        ..Default::default()
    };
    for p in &args.parties {
        let (uri, u) = p
            .rsplit_once('=')
            .ok_or_else(|| local(format!("--party {p}: expected URI=USCC")))?;
        opts.parties.insert(uri.to_string(), Uscc(u.to_string()));
    }
    Ok(opts)
}

/// Has the node check `recs` (made from `events`) in order; the height they were
/// checked at, or each refusal printed and a failure.
fn check_all(
    cli: &Cli,
    node: &NodeClient,
    events: &[usize],
    recs: &[SignedRecord],
) -> Result<u64, Failure> {
    let checked = node.check_records(recs)?;
    let refused: Vec<String> = checked
        .results
        .iter()
        .zip(events)
        .filter_map(|(r, ev)| {
            r.code.as_ref().map(|c| {
                format!(
                    "event {ev}: {} record {}: {c}: {}",
                    recs.iter()
                        .find(|x| x.id() == r.id)
                        .map_or("?", |x| x.kind().name()),
                    r.id,
                    r.message.as_deref().unwrap_or("")
                )
            })
        })
        .collect();
    if !refused.is_empty() {
        print(cli.json, &refused, || refused.join("\n"));
        return Err(Failure::Invalid(format!(
            "the node would refuse {} of {} records; nothing was submitted",
            refused.len(),
            recs.len()
        )));
    }
    Ok(checked.height)
}

/// Submits `recs` in order; a refusal now means the state changed since the check.
fn submit_all(node: &NodeClient, events: &[usize], recs: &[SignedRecord]) -> Result<(), Failure> {
    let bar = crate::progress(recs.len() as u64, "import");
    for (i, r) in recs.iter().enumerate() {
        if let Err(e) = crate::submit::submit_patiently(node, r) {
            bar.abandon();
            let (Failure::Invalid(m) | Failure::Unreachable(m) | Failure::Local(m)) = e;
            return Err(Failure::Invalid(format!(
                "the state changed since the check: event {}'s {} record was refused ({m}); {i} of {} records had been submitted, the rest were not",
                events[i],
                r.kind().name(),
                recs.len()
            )));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}
