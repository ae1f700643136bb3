//! The `xinlian` command: keys, signed records, reading the ledger from any node, and
//! proofs checked against genesis. A library module so tests can run this very CLI.
//!
//! Exit codes: 0 success; 1 the record or request is invalid (refused by the node or
//! failing a local check); 2 the node is unreachable or answered nonsense; 3 a local
//! file or argument problem.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod governance;
mod report_text;

use crate::report_text as report;
use clap::{Parser, Subcommand};
use xinlian_client::api::RecordStatus;
use xinlian_client::checks::check_stateless;
use xinlian_client::epcis;
use xinlian_client::genesis::{Genesis, keys};
use xinlian_client::http::{
    ClientError, FetchVerifyError, NodeClient, fetch_provenance, fetch_verified,
};
use xinlian_client::proof::{
    BUNDLE_FORMAT, Bundle, LightClient, RecordProof, SignerAuthority, TrustState, VerifiedRecord,
};
use xinlian_client::provenance::{
    Direction, PROVENANCE_BUNDLE_FORMAT, Provenance, ProvenanceBundle,
};
use xinlian_client::record::{Body, EncodedRecord, Kind, RecordId, SignedRecord};
use xinlian_client::signer::RecordSigner;

#[derive(Parser)]
#[command(
    name = "xinlian",
    version,
    about = "Sign, submit and check xinlian ledger records"
)]
pub(crate) struct Cli {
    /// The node's API.
    #[arg(
        long,
        global = true,
        env = "XINLIAN_NODE",
        default_value = "http://127.0.0.1:8700"
    )]
    node: String,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// The consortium's genesis file: what every check is made against.
    #[arg(long, global = true, env = "XINLIAN_GENESIS")]
    genesis: Option<PathBuf>,
    /// Where to keep the latest verified header between runs (default: under
    /// $XDG_STATE_HOME or ~/.local/state, per chain).
    #[arg(long, global = true, env = "XINLIAN_TRUST")]
    trust: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Key files (PKCS#8 PEM; `openssl genpkey -algorithm ed25519` keys work too).
    Key {
        #[command(subcommand)]
        command: KeyCmd,
    },
    /// Sign a record body with a key and submit it.
    Submit {
        #[arg(long)]
        key: PathBuf,
        /// The record kind, e.g. commitment, outcome, ship, receive, inspect.
        #[arg(long)]
        kind: String,
        /// The body as JSON or TOML (by extension); `-` reads JSON from stdin.
        #[arg(long)]
        body: Option<PathBuf>,
        /// A body field as PATH=VALUE (repeatable; `quantity.amount=100` nests; the
        /// value is read as JSON when it parses, else as text). Applied over --body.
        #[arg(long = "field", short = 'f', value_name = "PATH=VALUE")]
        fields: Vec<String>,
        /// Wait until the record is final (and, given --genesis, verify its proof).
        #[arg(long)]
        wait: bool,
    },
    /// Fetch a record; given --genesis, verify its proof of finality and its signer.
    Record {
        id: String,
        #[arg(long)]
        wait: bool,
    },
    /// Write an offline proof bundle for a final record (needs --genesis).
    Prove {
        id: String,
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
    },
    /// Verify a proof bundle FILE offline, or a record ID online, against --genesis.
    Verify { target: String },
    /// The node's chain, height and tip.
    Status,
    /// A finalized block: header, certificate, record ids.
    Block { height: u64 },
    /// An enterprise: registration, credit profile, commitments, lists, records.
    Enterprise { uscc: String },
    /// A batch: product, holders, shipments in transit, events, derived batches.
    Batch { batch: String },
    /// GS1 EPCIS 2.0: export a batch's verified events, or import a document as records.
    Epcis {
        #[command(subcommand)]
        command: EpcisCmd,
    },
    /// A batch's provenance back to every origin (custody, inspections, recalls), every
    /// event verified against a finalized header and proven complete (needs --genesis).
    Trace {
        batch: String,
        /// Also write the proofs to FILE, for `xinlian verify FILE` with no network.
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Transform steps to follow (default: all, up to the node's bound).
        #[arg(long)]
        depth: Option<u32>,
    },
    /// Consortium governance: propose roster and policy changes, vote, list proposals.
    Governance {
        #[command(subcommand)]
        command: crate::governance::GovernanceCmd,
    },
    /// Everything made from a batch, with quantities and current holders, verified and
    /// proven complete (needs --genesis).
    RecallReach {
        batch: String,
        #[arg(long)]
        bundle: Option<PathBuf>,
        #[arg(long)]
        depth: Option<u32>,
    },
}

#[derive(Subcommand)]
enum EpcisCmd {
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
    /// order, and submit them only if every one would be accepted.
    Import {
        file: PathBuf,
        #[arg(long)]
        key: PathBuf,
        /// The importing enterprise's USCC (matches its receipts to shipments).
        #[arg(long)]
        uscc: Option<String>,
        /// Trace domain for new batches whose events do not name one.
        #[arg(long)]
        domain: Option<String>,
        /// A party URI the document uses (an SGLN, a PGLN) and the USCC it stands for.
        #[arg(long = "party", value_name = "URI=USCC")]
        parties: Vec<String>,
        /// Map and check only; submit nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Write a new key (readable by its owner only) and print its public key.
    New { file: PathBuf },
    /// Print a key file's public key.
    Show { file: PathBuf },
}

pub(crate) enum Failure {
    Invalid(String),
    Unreachable(String),
    Local(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Refused { .. } => Failure::Invalid(e.to_string()),
            other => Failure::Unreachable(other.to_string()),
        }
    }
}

pub(crate) fn local(e: impl std::fmt::Display) -> Failure {
    Failure::Local(e.to_string())
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Invalid(m)) => {
            eprintln!("invalid: {m}");
            ExitCode::from(1)
        }
        Err(Failure::Unreachable(m)) => {
            eprintln!("unreachable: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Local(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(3)
        }
    }
}

pub(crate) fn print<T: serde::Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) {
    use std::io::Write;
    let out = if json {
        serde_json::to_string_pretty(value).expect("API types serialise")
    } else {
        text()
    };
    // A closed pipe (`xinlian … | head`) is the reader's choice, not an error.
    let _ = writeln!(std::io::stdout().lock(), "{out}");
}

fn read_body(kind: Kind, path: Option<&Path>, fields: &[String]) -> Result<Body, Failure> {
    let mut value = match path {
        Some(p) => read_body_file(p)?,
        None => serde_json::Value::Object(Default::default()),
    };
    for f in fields {
        let (path, text) = f
            .split_once('=')
            .ok_or_else(|| local(format!("--field {f}: expected PATH=VALUE")))?;
        let v = serde_json::from_str(text).unwrap_or_else(|_| text.into());
        let mut slot = &mut value;
        for part in path.split('.') {
            if !slot.is_object() {
                return Err(local(format!("--field {f}: {part} is inside a non-object")));
            }
            slot = slot
                .as_object_mut()
                .expect("checked")
                .entry(part)
                .or_insert(serde_json::Value::Object(Default::default()));
        }
        *slot = v;
    }
    serde_json::from_value(serde_json::json!({ kind.name(): value }))
        .map_err(|e| Failure::Invalid(format!("not a {} body: {e}", kind.name())))
}

fn read_body_file(path: &Path) -> Result<serde_json::Value, Failure> {
    Ok(if path == Path::new("-") {
        serde_json::from_reader(std::io::stdin()).map_err(local)?
    } else {
        let text =
            std::fs::read_to_string(path).map_err(|e| local(format!("{}: {e}", path.display())))?;
        if path.extension().is_some_and(|e| e == "toml") {
            toml::from_str::<serde_json::Value>(&text)
                .map_err(|e| local(format!("{}: {e}", path.display())))?
        } else {
            serde_json::from_str(&text).map_err(|e| local(format!("{}: {e}", path.display())))?
        }
    })
}

pub(crate) fn parse_record_id(text: &str) -> Result<RecordId, Failure> {
    RecordId::from_hex(text).map_err(|e| local(format!("record id: {e}")))
}

fn load_genesis(path: Option<&Path>) -> Result<Option<Genesis>, Failure> {
    path.map(|p| Genesis::load(p).map_err(|e| local(format!("{}: {e}", p.display()))))
        .transpose()
}

fn require_genesis(cli: &Cli) -> Result<Genesis, Failure> {
    load_genesis(cli.genesis.as_deref())?.ok_or_else(|| {
        local("give the consortium's genesis file with --genesis (or XINLIAN_GENESIS)")
    })
}

/// The trust file for a chain: --trust, or a per-chain file in the user's state folder.
fn trust_path(cli: &Cli, chain: &xinlian_client::genesis::Hash32) -> Option<PathBuf> {
    if let Some(p) = &cli.trust {
        return Some(p.clone());
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("xinlian").join(format!("{chain}.trust.json")))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let fail = |e: std::io::Error| local(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// Verifies a record fetched from the node, starting from the saved trusted header
/// when there is one, and saves the header it ends at.
/// A light client for `genesis`, resumed from the saved trust state when it still
/// verifies, and where to save it again.
fn load_light(cli: &Cli, genesis: Genesis) -> (LightClient, Option<PathBuf>) {
    let chain = genesis.hash();
    let path = trust_path(cli, &chain);
    let saved: Option<TrustState> = path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok());
    let light = match saved {
        // A saved state that no longer verifies (another genesis, a damaged file) is
        // dropped: the client starts again from genesis.
        Some(s) => {
            LightClient::restore(genesis.clone(), &s).unwrap_or_else(|_| LightClient::new(genesis))
        }
        None => LightClient::new(genesis),
    };
    (light, path)
}

fn save_light(light: &LightClient, path: Option<PathBuf>) {
    if let Some(p) = path {
        let state = serde_json::to_string_pretty(&light.save()).expect("serialises");
        // The trust file is a cache: failing to write it costs only speed next time.
        if let Err(Failure::Local(m)) = write_atomically(&p, state.as_bytes()) {
            eprintln!("note: could not save the trusted header: {m}");
        }
    }
}

fn fetch_failure(e: FetchVerifyError) -> Failure {
    match e {
        FetchVerifyError::Node(e) => Failure::from(e),
        other => Failure::Invalid(other.to_string()),
    }
}

fn verify_online(
    cli: &Cli,
    node: &NodeClient,
    genesis: Genesis,
    id: &RecordId,
) -> Result<(VerifiedRecord, RecordProof), Failure> {
    let (mut light, path) = load_light(cli, genesis);
    let out = fetch_verified(node, &mut light, id).map_err(fetch_failure)?;
    save_light(&light, path);
    Ok(out)
}

fn epcis_command(cli: &Cli, node: &NodeClient, cmd: &EpcisCmd) -> Result<(), Failure> {
    match cmd {
        EpcisCmd::Export {
            batch,
            upstream,
            out,
        } => {
            let g = require_genesis(cli)?;
            let (mut light, path) = load_light(cli, g);
            let depth = if *upstream { None } else { Some(0) };
            let (answer, _) = fetch_provenance(node, &mut light, batch, Direction::Upstream, depth)
                .map_err(fetch_failure)?;
            save_light(&light, path);
            if *upstream && !answer.is_complete() {
                return Err(Failure::Invalid(format!(
                    "the provenance is partial: {} batches could not be fetched",
                    answer.missing.len()
                )));
            }
            let batches: Vec<_> = if *upstream {
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
            let doc =
                serde_json::to_string_pretty(&epcis::export(&batches, now)).expect("serialises");
            match out {
                Some(p) => write_atomically(p, doc.as_bytes())?,
                None => {
                    use std::io::Write;
                    // A closed pipe (`… | head`) is the reader's choice, not an error.
                    let _ = writeln!(std::io::stdout().lock(), "{doc}");
                }
            }
        }
        EpcisCmd::Import {
            file,
            key,
            uscc,
            domain,
            parties,
            dry_run,
        } => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| local(format!("{}: {e}", file.display())))?;
            let doc: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Failure::Invalid(format!("{} is not JSON: {e}", file.display())))?;
            let mut opts = epcis::ImportOptions {
                domain: domain.clone(),
                ..Default::default()
            };
            for p in parties {
                let (uri, u) = p
                    .rsplit_once('=')
                    .ok_or_else(|| local(format!("--party {p}: expected URI=USCC")))?;
                opts.parties
                    .insert(uri.to_string(), xinlian_client::ids::Uscc(u.to_string()));
            }
            let chain = match load_genesis(cli.genesis.as_deref())? {
                Some(g) => g.hash(),
                None => node.status()?.genesis_hash,
            };
            let signer = RecordSigner {
                key: keys::read_pem(key).map_err(local)?,
                chain,
            };
            let importer = uscc.clone().map(xinlian_client::ids::Uscc);
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
            let checked = node.check_records(&recs)?;
            let refused: Vec<String> = checked
                .results
                .iter()
                .zip(&events)
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
            let ids: Vec<RecordId> = recs.iter().map(SignedRecord::id).collect();
            if *dry_run {
                print(cli.json, &ids, || {
                    format!(
                        "{} events map to {} records, all of which the node would accept at height {}",
                        events
                            .iter()
                            .collect::<std::collections::BTreeSet<_>>()
                            .len(),
                        recs.len(),
                        checked.height + 1
                    )
                });
                return Ok(());
            }
            for (i, r) in recs.iter().enumerate() {
                if let Err(e) = submit_patiently(node, r) {
                    let (Failure::Invalid(m) | Failure::Unreachable(m) | Failure::Local(m)) = e;
                    return Err(Failure::Invalid(format!(
                        "the state changed since the check: event {}'s {} record was refused ({m}); {i} of {} records had been submitted, the rest were not",
                        events[i],
                        r.kind().name(),
                        recs.len()
                    )));
                }
            }
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
        }
    }
    Ok(())
}

/// Submits, waiting for blocks while the node's mempool is full.
fn submit_patiently(node: &NodeClient, r: &SignedRecord) -> Result<(), Failure> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        match node.submit(r) {
            Ok(_) => return Ok(()),
            Err(ClientError::Refused { code, .. })
                if code == "mempool_full" && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `trace` and `recall-reach`: fetch and verify every page, optionally bundle them,
/// print, and fail (exit 1) when part of the answer could not be verified.
fn provenance_command(
    cli: &Cli,
    node: &NodeClient,
    batch: &str,
    direction: Direction,
    depth: Option<u32>,
    bundle: Option<&Path>,
) -> Result<(), Failure> {
    let g = require_genesis(cli)?;
    let (mut light, path) = load_light(cli, g);
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
            roster_changes: light.changes_until(answer.final_to),
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

fn print_provenance(cli: &Cli, answer: &Provenance) -> Result<(), Failure> {
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

/// Signs `body` with the key in `key`, refuses locally what every node would refuse,
/// submits it, and with `wait` waits for finality (verifying it given --genesis).
pub(crate) fn submit_body(
    cli: &Cli,
    node: &NodeClient,
    key: &Path,
    body: Body,
    wait: bool,
) -> Result<(), Failure> {
    let genesis = load_genesis(cli.genesis.as_deref())?;
    let chain = match &genesis {
        Some(g) => g.hash(),
        None => node.status()?.genesis_hash,
    };
    let signer = RecordSigner {
        key: keys::read_pem(key).map_err(local)?,
        chain,
    };
    let rec = signer.sign(body);
    // Refuse locally what every node would refuse, with the same words.
    check_stateless(&EncodedRecord::new(rec.clone()), &chain)
        .map_err(|e| Failure::Invalid(e.to_string()))?;
    if !wait {
        let s = node.submit(&rec)?;
        print(cli.json, &s, || format!("{} accepted", s.id));
        return Ok(());
    }
    let v = node.submit_and_wait(&rec, 30_000)?;
    match (v.height, genesis) {
        (Some(_), Some(g)) => {
            let (verified, _) = verify_online(cli, node, g, &v.id)?;
            print(cli.json, &verified, || describe(&verified));
        }
        _ => print(cli.json, &v, || match v.height {
            Some(h) => format!("{} final at height {h} (give --genesis to verify)", v.id),
            None => format!("{} accepted, still pending", v.id),
        }),
    }
    Ok(())
}

fn describe(v: &VerifiedRecord) -> String {
    let place = match v.block_height {
        Some(h) => format!("appended in block {h}"),
        None => format!("final at or before block {}", v.final_at),
    };
    let signer = match &v.signer {
        SignerAuthority::Member { id, roles } => {
            format!("consortium member '{id}' ({})", roles.join(", "))
        }
        SignerAuthority::Enterprise {
            uscc,
            bound_by,
            registrar,
        } => format!(
            "enterprise {uscc}, key bound by record {} (chain of {} binding(s) from registrar '{registrar}')",
            bound_by[0],
            bound_by.len()
        ),
    };
    format!(
        "VERIFIED {} {}\n  {place}, ledger index {}; header {} certified by the validators in force\n  signed by {signer}\n{}",
        v.record.kind().name(),
        v.id,
        v.ledger_index,
        v.checkpoint_hash,
        serde_json::to_string_pretty(&v.record.envelope.body).expect("serialises")
    )
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let node = NodeClient::new(&cli.node);
    match &cli.command {
        Cmd::Key {
            command: KeyCmd::New { file },
        } => {
            if file.exists() {
                return Err(local(format!(
                    "{} exists; not overwriting a key",
                    file.display()
                )));
            }
            let k = keys::generate().map_err(local)?;
            keys::write_pem(file, &k).map_err(local)?;
            let pk = keys::public_key(&k);
            print(cli.json, &serde_json::json!({ "public_key": pk }), || {
                format!("{pk}")
            });
        }
        Cmd::Key {
            command: KeyCmd::Show { file },
        } => {
            let pk = keys::public_key(&keys::read_pem(file).map_err(local)?);
            print(cli.json, &serde_json::json!({ "public_key": pk }), || {
                format!("{pk}")
            });
        }
        Cmd::Submit {
            key,
            kind,
            body,
            fields,
            wait,
        } => {
            let kind = Kind::from_name(kind).ok_or_else(|| {
                local(format!(
                    "unknown kind '{kind}'; one of: {}",
                    Kind::ALL
                        .iter()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            if body.is_none() && fields.is_empty() {
                return Err(local(
                    "give the body with --body FILE and/or --field PATH=VALUE",
                ));
            }
            let body = read_body(kind, body.as_deref(), fields)?;
            submit_body(cli, &node, key, body, *wait)?;
        }
        Cmd::Governance { command } => crate::governance::run(cli, &node, command)?,
        Cmd::Record { id, wait } => {
            let id = parse_record_id(id)?;
            let v = node.record(&id, if *wait { 30_000 } else { 0 })?;
            if v.record.id() != id {
                return Err(Failure::Invalid(format!(
                    "node returned record {} for {id}",
                    v.record.id()
                )));
            }
            if let (RecordStatus::Final, Some(g)) =
                (v.status, load_genesis(cli.genesis.as_deref())?)
            {
                let (verified, _) = verify_online(cli, &node, g, &id)?;
                print(cli.json, &verified, || describe(&verified));
                return Ok(());
            }
            check_stateless(
                &EncodedRecord::new(v.record.clone()),
                &v.record.envelope.chain,
            )
            .map_err(|e| Failure::Invalid(format!("record {id} fails verification: {e}")))?;
            print(cli.json, &v, || {
                let status = match (v.status, v.height) {
                    (RecordStatus::Final, Some(h)) => format!(
                        "final at height {h}, ledger index {} (not verified: give --genesis)",
                        v.ledger_index.unwrap_or_default()
                    ),
                    _ => "pending".into(),
                };
                format!(
                    "{} {}: {status}\nsigner {} (signature valid under ZIP-215)\n{}",
                    v.kind.name(),
                    v.id,
                    v.record.envelope.signer,
                    serde_json::to_string_pretty(&v.record.envelope.body).expect("serialises")
                )
            });
        }
        Cmd::Prove { id, out } => {
            let id = parse_record_id(id)?;
            let g = require_genesis(cli)?;
            let mut light = LightClient::new(g);
            light
                .accept_changes(&node.roster_changes(1)?.changes)
                .map_err(|e| Failure::Invalid(format!("verification failed: {e}")))?;
            // A bundle proves against the record's own block, so it also says where
            // the record was appended.
            let proof = node.record_proof(&id, None)?;
            let verified = light
                .verify_record(&proof)
                .map_err(|e| Failure::Invalid(format!("verification failed: {e}")))?;
            if verified.id != id {
                return Err(Failure::Invalid(format!(
                    "verification failed: asked for {id}, the node proved {}",
                    verified.id
                )));
            }
            let bundle = Bundle {
                format: BUNDLE_FORMAT.into(),
                chain: light.chain(),
                roster_changes: light.changes_until(verified.final_at),
                proof,
            };
            write_atomically(
                out,
                serde_json::to_string_pretty(&bundle)
                    .expect("serialises")
                    .as_bytes(),
            )?;
            print(cli.json, &verified, || {
                format!(
                    "{}\nbundle written to {}",
                    describe(&verified),
                    out.display()
                )
            });
        }
        Cmd::Verify { target } => {
            let g = require_genesis(cli)?;
            let path = Path::new(target);
            let verified = if path.is_file() {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| local(format!("{}: {e}", path.display())))?;
                let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    Failure::Invalid(format!("{} is not a proof bundle: {e}", path.display()))
                })?;
                if value["format"] == PROVENANCE_BUNDLE_FORMAT {
                    let bundle: ProvenanceBundle = serde_json::from_value(value).map_err(|e| {
                        Failure::Invalid(format!(
                            "{} is not a provenance bundle: {e}",
                            path.display()
                        ))
                    })?;
                    let answer = LightClient::verify_provenance_bundle(g, &bundle)
                        .map_err(|e| Failure::Invalid(format!("verification failed: {e}")))?;
                    return print_provenance(cli, &answer);
                }
                let bundle: Bundle = serde_json::from_value(value).map_err(|e| {
                    Failure::Invalid(format!("{} is not a proof bundle: {e}", path.display()))
                })?;
                LightClient::verify_bundle(g, &bundle)
                    .map_err(|e| Failure::Invalid(format!("verification failed: {e}")))?
            } else {
                let id = parse_record_id(target).map_err(|_| {
                    local(format!(
                        "'{target}' is neither a bundle file nor a record id"
                    ))
                })?;
                verify_online(cli, &node, g, &id)?.0
            };
            print(cli.json, &verified, || describe(&verified));
        }
        Cmd::Status => {
            let s = node.status()?;
            print(cli.json, &s, || {
                format!(
                    "chain {} ({})\nheight {}  tip {}\nledger {} records, root {}\nnode {}{}",
                    s.chain_id,
                    s.genesis_hash,
                    s.height,
                    s.tip_hash,
                    s.ledger_size,
                    s.ledger_root,
                    s.node,
                    if s.validator { " (validator)" } else { "" }
                )
            });
        }
        Cmd::Block { height } => {
            let b = node.block(*height)?;
            print(cli.json, &b, || {
                format!(
                    "block {} {}\nparent {}\n{} records, {} precommits",
                    b.header.height,
                    b.hash,
                    b.header.parent,
                    b.records.len(),
                    b.certificate.signatures.len()
                )
            });
        }
        Cmd::Enterprise { uscc } => {
            let e = node.enterprise(uscc)?;
            print(cli.json, &e, || {
                let mut out = format!(
                    "{} {}\nregistered by {} at height {}\n",
                    e.entity.uscc, e.entity.name, e.entity.registered_by, e.entity.registered_at
                );
                let p = &e.profile;
                out += &format!(
                    "commitments {}: pending {}, fulfilled {}, not verifiable {}, breached {}/{}/{} (minor/general/serious), repaired {}\n",
                    p.commitments,
                    p.pending,
                    p.fulfilled,
                    p.not_verifiable,
                    p.breached_minor,
                    p.breached_general,
                    p.breached_serious,
                    p.repaired
                );
                for l in &e.lists {
                    out += &format!("on list {:?} since {} ({})\n", l.list, l.date, l.domain);
                }
                for c in &e.commitments {
                    out += &format!(
                        "  {:?} {:?} → {:?}  ({})\n",
                        c.kind, c.accepting_agency, c.status, c.id
                    );
                }
                out.trim_end().to_string()
            });
        }
        Cmd::Batch { batch } => {
            let b = node.batch(batch)?;
            print(cli.json, &b, || {
                let s = &b.batch;
                let mut out = format!(
                    "{} — {} (lot {}, {} {} made by {})\n",
                    s.batch, s.product.name, s.lot, s.created_amount, s.uom, s.created_by
                );
                if let Some(r) = s.recalled {
                    out += &format!("RECALLED by record {r}\n");
                }
                for h in &b.holders {
                    out += &format!("  held by {}: {} {}\n", h.holder, h.amount, s.uom);
                }
                for t in &b.in_transit {
                    out += &format!(
                        "  in transit {} → {}: {} {}\n",
                        t.from, t.to, t.amount, s.uom
                    );
                }
                out += &format!(
                    "{} events; made from {:?}; used in {:?}",
                    b.events.len(),
                    s.parents,
                    b.children
                );
                out
            });
        }
        Cmd::Epcis { command } => epcis_command(cli, &node, command)?,
        Cmd::Trace {
            batch,
            bundle,
            depth,
        }
        | Cmd::RecallReach {
            batch,
            bundle,
            depth,
        } => {
            let direction = if matches!(cli.command, Cmd::Trace { .. }) {
                Direction::Upstream
            } else {
                Direction::Downstream
            };
            provenance_command(cli, &node, batch, direction, *depth, bundle.as_deref())?
        }
    }
    Ok(())
}
