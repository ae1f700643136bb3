//! `xinlian`: keys, signed records, and reading the ledger from any node.
//!
//! Exit codes: 0 success; 1 the record or request is invalid (refused by the node or
//! failing a local check); 2 the node is unreachable or answered nonsense; 3 a local
//! file or argument problem.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xinlian_client::api::RecordStatus;
use xinlian_client::checks::check_stateless;
use xinlian_client::genesis::{Genesis, keys};
use xinlian_client::http::{ClientError, NodeClient, RecordSigner};
use xinlian_client::record::{Body, EncodedRecord, Kind, RecordId};

#[derive(Parser)]
#[command(
    name = "xinlian",
    version,
    about = "Sign, submit and check xinlian ledger records"
)]
struct Cli {
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
    json: bool,
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
        body: PathBuf,
        /// Take the chain id from this genesis instead of asking the node.
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// Wait until the record is final.
        #[arg(long)]
        wait: bool,
    },
    /// Fetch a record and check its signature and chain locally.
    Record {
        id: String,
        #[arg(long)]
        genesis: Option<PathBuf>,
        #[arg(long)]
        wait: bool,
    },
    /// The node's chain, height and tip.
    Status,
    /// A finalized block: header, certificate, record ids.
    Block { height: u64 },
    /// An enterprise: registration, credit profile, commitments, lists, records.
    Enterprise { uscc: String },
    /// A batch: product, holders, shipments in transit, events, derived batches.
    Batch { batch: String },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Write a new key (readable by its owner only) and print its public key.
    New { file: PathBuf },
    /// Print a key file's public key.
    Show { file: PathBuf },
}

enum Failure {
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

fn local(e: impl std::fmt::Display) -> Failure {
    Failure::Local(e.to_string())
}

fn main() -> ExitCode {
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

fn print<T: serde::Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) {
    use std::io::Write;
    let out = if json {
        serde_json::to_string_pretty(value).expect("API types serialise")
    } else {
        text()
    };
    // A closed pipe (`xinlian … | head`) is the reader's choice, not an error.
    let _ = writeln!(std::io::stdout().lock(), "{out}");
}

fn read_body(kind: Kind, path: &Path) -> Result<Body, Failure> {
    let value: serde_json::Value = if path == Path::new("-") {
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
    };
    serde_json::from_value(serde_json::json!({ kind.name(): value }))
        .map_err(|e| Failure::Invalid(format!("not a {} body: {e}", kind.name())))
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
            genesis,
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
            let body = read_body(kind, body)?;
            let chain = match genesis {
                Some(g) => Genesis::load(g).map_err(local)?.hash(),
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
            if *wait {
                let v = node.submit_and_wait(&rec, 30_000)?;
                print(cli.json, &v, || match v.height {
                    Some(h) => format!("{} final at height {h}", v.id),
                    None => format!("{} accepted, still pending", v.id),
                });
            } else {
                let s = node.submit(&rec)?;
                print(cli.json, &s, || format!("{} accepted", s.id));
            }
        }
        Cmd::Record { id, genesis, wait } => {
            let id = RecordId::from_hex(id).map_err(|e| local(format!("record id: {e}")))?;
            let v = node.record(&id, if *wait { 30_000 } else { 0 })?;
            if v.record.id() != id {
                return Err(Failure::Invalid(format!(
                    "node returned record {} for {id}",
                    v.record.id()
                )));
            }
            let chain = match genesis {
                Some(g) => Genesis::load(g).map_err(local)?.hash(),
                None => v.record.envelope.chain,
            };
            check_stateless(&EncodedRecord::new(v.record.clone()), &chain)
                .map_err(|e| Failure::Invalid(format!("record {id} fails verification: {e}")))?;
            print(cli.json, &v, || {
                let status = match (v.status, v.height) {
                    (RecordStatus::Final, Some(h)) => format!(
                        "final at height {h}, ledger index {}",
                        v.ledger_index.unwrap_or_default()
                    ),
                    _ => "pending".into(),
                };
                format!(
                    "{} {}: {status}\nsigner {} (signature valid under ZIP-215, chain {})\n{}",
                    v.kind.name(),
                    v.id,
                    v.record.envelope.signer,
                    chain,
                    serde_json::to_string_pretty(&v.record.envelope.body).expect("serialises")
                )
            });
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
    }
    Ok(())
}
