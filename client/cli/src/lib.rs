//! The `xinlian` command: keys, signed records, reading the ledger from any node, and
//! proofs checked against genesis. A library module so tests can run this very CLI.
//!
//! Exit codes: 0 success; 1 the record or request is invalid (refused by the node or
//! failing a local check); 2 the node is unreachable or answered nonsense; 3 a local
//! file or argument problem.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod credit;
mod epcis;
mod follow;
mod governance;
mod key;
mod private;
mod provenance;
mod read;
mod report_text;
mod submit;
mod verify;

use clap::{Parser, Subcommand};
use xinlian_client::genesis::Genesis;
use xinlian_client::http::{ClientError, NodeClient};
use xinlian_client::provenance::Direction;
use xinlian_client::record::RecordId;

pub(crate) use crate::submit::submit_body;

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
    /// Authenticate an `https://` node by the CA certificates in this PEM file (the
    /// consortium's own CA, or the devnet's `devnet/tls/ca.pem`) instead of the
    /// public roots.
    #[arg(long, global = true, env = "XINLIAN_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
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
    /// Read as this enterprise or member (`enterprise:USCC`, `member:ID`, or `key`:
    /// whoever holds --reader-key on the ledger): requests
    /// are signed (RFC 9421) with --reader-key, and the node answers what that reader
    /// may see (docs/privacy.md). Without, it answers as to the public.
    #[arg(
        long = "as",
        global = true,
        env = "XINLIAN_AS",
        value_name = "KEYID",
        requires = "reader_key"
    )]
    reader: Option<String>,
    /// The key that signs requests for --as (PKCS#8 PEM).
    #[arg(
        long,
        global = true,
        env = "XINLIAN_READER_KEY",
        value_name = "FILE",
        requires = "reader"
    )]
    reader_key: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum PrivateCmd {
    /// Send a record's private data (JSON, as `submit` keeps it when it cannot send it).
    Put { file: PathBuf },
    /// Read and check a record's private text.
    Get { id: String },
}

#[derive(Subcommand)]
enum Cmd {
    /// Key files (PKCS#8 PEM; `openssl genpkey -algorithm ed25519` keys work too).
    Key {
        #[command(subcommand)]
        command: crate::key::KeyCmd,
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
        /// The file of a key the body binds (register_entity `key`, rotate_entity_key
        /// `new_key`, the keys a proposal's change names; repeatable): fills that key
        /// when the body gives none, and makes the body's proofs of possession with
        /// it. Without it the body must carry `possession` itself (`xinlian key
        /// possession`).
        #[arg(long = "new-key", value_name = "FILE")]
        new_keys: Vec<PathBuf>,
        /// Wait until the record is final (and, given --genesis, verify its proof).
        #[arg(long)]
        wait: bool,
    },
    /// Submit records signed elsewhere, one JSON signed record per line, in order
    /// (progress on a terminal); stops at the first refusal.
    SubmitSigned {
        file: PathBuf,
        /// Wait until the last one is final.
        #[arg(long)]
        wait: bool,
    },
    /// A record's private (sealed) text: `put FILE` sends it to the node, `get ID`
    /// reads it as an entitled reader (`--as`) and checks it against the record,
    /// verified from genesis.
    Private {
        #[command(subcommand)]
        command: PrivateCmd,
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
    /// Follow finalized records as they come, each verified against --genesis: one
    /// line per record (ledger index, height, kind, id, signer), resumed from the
    /// cursor after any break of the connection. Exit 1 when what arrives does not
    /// verify. Unfiltered, it is also proven that no record was left out.
    Follow {
        /// Only records of these kinds (comma-separated, or repeated).
        #[arg(long, value_delimiter = ',')]
        kind: Vec<String>,
        /// Only records concerning this enterprise (USCC).
        #[arg(long, conflicts_with = "batch")]
        enterprise: Option<String>,
        /// Only this batch's events.
        #[arg(long)]
        batch: Option<String>,
        /// Start at this ledger index: the cursor an earlier run ended with.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Stop after this many records.
        #[arg(long)]
        count: Option<u64>,
    },
    /// A finalized block: header, certificate, record ids.
    Block { height: u64 },
    /// An enterprise: registration, credit profile, commitments, lists, records.
    Enterprise { uscc: String },
    /// An enterprise's complete credit record, verified, with its grade and reasons.
    Credit {
        uscc: String,
        /// Write an offline report (checked by `xinlian verify FILE`).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Write the report as a page (zh/en, with a QR code).
        #[arg(long)]
        html: Option<PathBuf>,
        /// Check the claim "no serious breach determined between FROM and TO".
        #[arg(long, value_name = "FROM:TO")]
        no_serious_breach: Option<String>,
        /// Check the claim "not on the serious-dishonesty list on DATE".
        #[arg(long, value_name = "DATE")]
        not_listed_on: Option<String>,
    },
    /// A batch: product, holders, shipments in transit, events, derived batches.
    Batch { batch: String },
    /// GS1 EPCIS 2.0: export a batch's verified events, or import a document as records.
    Epcis {
        #[command(subcommand)]
        command: crate::epcis::EpcisCmd,
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

/// One command, by family.
fn run(cli: &Cli) -> Result<(), Failure> {
    let mut node = NodeClient::new(&cli.node);
    if let Some(ca) = &cli.ca {
        node = node
            .trusting_file(ca)
            .map_err(|e| Failure::Local(e.to_string()))?;
    }
    if let (Some(keyid), Some(file)) = (&cli.reader, &cli.reader_key) {
        let key = xinlian_client::genesis::keys::read_pem(file)
            .map_err(|e| Failure::Local(format!("{}: {e}", file.display())))?;
        node = node.signed_by(xinlian_client::http::RequestSigner::named(keyid, key));
    }
    match &cli.command {
        Cmd::Key { command } => key::run(cli, &node, command),
        Cmd::Submit {
            key,
            kind,
            body,
            fields,
            new_keys,
            wait,
        } => submit::run(
            cli,
            &node,
            &submit::SubmitArgs {
                key,
                kind,
                body: body.as_deref(),
                fields,
                new_keys,
                wait: *wait,
            },
        ),
        Cmd::SubmitSigned { file, wait } => submit::bulk(cli, &node, file, *wait),
        Cmd::Governance { command } => governance::run(cli, &node, command),
        Cmd::Record { id, wait } => read::record(cli, &node, id, *wait),
        Cmd::Private { command } => match command {
            PrivateCmd::Put { file } => private::put(cli, &node, file),
            PrivateCmd::Get { id } => private::get(cli, &node, id),
        },
        Cmd::Prove { id, out } => verify::prove(cli, &node, id, out),
        Cmd::Verify { target } => verify::verify(cli, &node, target),
        Cmd::Status => read::status(cli, &node),
        Cmd::Block { height } => read::block(cli, &node, *height),
        Cmd::Follow {
            kind,
            enterprise,
            batch,
            from,
            count,
        } => follow::run(
            cli,
            &node,
            &follow::FollowArgs {
                kinds: kind,
                enterprise: enterprise.as_deref(),
                batch: batch.as_deref(),
                from: *from,
                count: *count,
            },
        ),
        Cmd::Enterprise { uscc } => read::enterprise(cli, &node, uscc),
        Cmd::Credit {
            uscc,
            report,
            html,
            no_serious_breach,
            not_listed_on,
        } => credit::run(
            cli,
            &node,
            &credit::CreditArgs {
                uscc,
                report: report.as_deref(),
                html: html.as_deref(),
                no_serious_breach: no_serious_breach.as_deref(),
                not_listed_on: not_listed_on.as_deref(),
            },
        ),
        Cmd::Batch { batch } => read::batch(cli, &node, batch),
        Cmd::Epcis { command } => epcis::run(cli, &node, command),
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
            provenance::run(cli, &node, batch, direction, *depth, bundle.as_deref())
        }
    }
}

/// A progress bar on standard error when it is a terminal; drawn nowhere otherwise.
pub(crate) fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} {bar:40} {pos}/{len} ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
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

/// A local file's text; failing to read it is a local problem naming the file.
pub(crate) fn read_file(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| local(format!("{}: {e}", path.display())))
}

pub(crate) fn parse_record_id(text: &str) -> Result<RecordId, Failure> {
    RecordId::from_hex(text).map_err(|e| local(format!("record id: {e}")))
}

pub(crate) fn load_genesis(path: Option<&Path>) -> Result<Option<Genesis>, Failure> {
    path.map(|p| Genesis::load(p).map_err(|e| local(format!("{}: {e}", p.display()))))
        .transpose()
}

pub(crate) fn require_genesis(cli: &Cli) -> Result<Genesis, Failure> {
    load_genesis(cli.genesis.as_deref())?.ok_or_else(|| {
        local("give the consortium's genesis file with --genesis (or XINLIAN_GENESIS)")
    })
}

pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let fail = |e: std::io::Error| local(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}
