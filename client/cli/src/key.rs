//! `xinlian key …`: writing a new key file, showing a key file's public key, and
//! proving possession of a key before it is bound to an enterprise or a member.

use std::path::{Path, PathBuf};

use clap::{ArgGroup, Subcommand};
use xinlian_client::crypto::{KeyHolder, Signature, prove_possession};
use xinlian_client::genesis::keys::{self, SigningKey};
use xinlian_client::genesis::{Hash32, PublicKey};
use xinlian_client::http::NodeClient;

use crate::{Cli, Failure, load_genesis, local, print};

#[derive(Subcommand)]
pub(crate) enum KeyCmd {
    /// Write a new key (readable by its owner only) and print its public key.
    New { file: PathBuf },
    /// Print a key file's public key.
    Show { file: PathBuf },
    /// Print the proof that the holder of the key in FILE means it to be bound to an
    /// enterprise (`--enterprise USCC`), a member (`--member ID`) or as a custody key for
    /// a trace domain (`--custody DOMAIN`) on this chain (from --genesis, else the
    /// node's): the `possession` field of a `register_entity`, `rotate_entity_key` or
    /// `bind_custody_key` body, or one entry of a proposal's `possession` list.
    /// (`xinlian submit --new-key FILE` and `governance propose --new-key FILE` make it
    /// themselves when they have the key file.)
    #[command(group(ArgGroup::new("holder").required(true).args(["enterprise", "member", "custody"])))]
    Possession {
        #[arg(long)]
        key: PathBuf,
        /// The enterprise's USCC, all 18 characters.
        #[arg(long)]
        enterprise: Option<String>,
        /// The member id (for a governance change naming the key).
        #[arg(long)]
        member: Option<String>,
        /// The trace domain (for a custody key; the enterprise gives the registrar only
        /// the public key and this proof).
        #[arg(long)]
        custody: Option<String>,
    },
}

pub(crate) fn run(cli: &Cli, node: &NodeClient, cmd: &KeyCmd) -> Result<(), Failure> {
    let pk = match cmd {
        KeyCmd::New { file } => {
            if file.exists() {
                return Err(local(format!(
                    "{} exists; not overwriting a key",
                    file.display()
                )));
            }
            let k = keys::generate().map_err(local)?;
            keys::write_pem(file, &k).map_err(local)?;
            keys::public_key(&k)
        }
        KeyCmd::Show { file } => keys::public_key(&read_key(file)?),
        KeyCmd::Possession {
            key,
            enterprise,
            member,
            custody,
        } => {
            let chain = chain(cli, node)?;
            let k = read_key(key)?;
            if let Some(u) = enterprise {
                xinlian_client::ids::Uscc(u.clone())
                    .check_format()
                    .map_err(|e| local(format!("--enterprise {u}: {e}")))?;
            }
            let holder = match (enterprise, member, custody) {
                (Some(u), _, _) => KeyHolder::Enterprise(u),
                (None, Some(m), _) => KeyHolder::Member(m),
                (None, None, Some(d)) => KeyHolder::Custody(d),
                (None, None, None) => unreachable!("clap requires one"),
            };
            let proof = prove_possession(&k, &chain, holder);
            let pk = keys::public_key(&k);
            print(
                cli.json,
                &serde_json::json!({
                    "public_key": pk,
                    "holder": holder.to_string(),
                    "chain": chain,
                    "possession": proof,
                }),
                || proof.to_hex(),
            );
            return Ok(());
        }
    };
    print(cli.json, &serde_json::json!({ "public_key": pk }), || {
        format!("{pk}")
    });
    Ok(())
}

fn read_key(file: &Path) -> Result<SigningKey, Failure> {
    keys::read_pem(file).map_err(|e| local(format!("{}: {e}", file.display())))
}

/// The chain records are made for: --genesis's, else the one the node serves.
pub(crate) fn chain(cli: &Cli, node: &NodeClient) -> Result<Hash32, Failure> {
    Ok(match load_genesis(cli.genesis.as_deref())? {
        Some(g) => g.hash(),
        None => node.status()?.genesis_hash,
    })
}

/// Proofs of possession for `named` keys, in order, each with its holder: made with
/// the key file among `files` that holds it, or taken from `given` (hex, in order of
/// the keys no file holds).
pub(crate) fn possession_proofs(
    chain: &Hash32,
    named: &[(PublicKey, KeyHolder<'_>)],
    files: &[PathBuf],
    given: &[String],
) -> Result<Vec<Signature>, Failure> {
    let held: Vec<SigningKey> = files
        .iter()
        .map(|f| read_key(f))
        .collect::<Result<_, _>>()?;
    let mut given = given.iter();
    let mut out = Vec::with_capacity(named.len());
    for (k, holder) in named {
        let proof = match held.iter().find(|s| keys::public_key(s) == *k) {
            Some(s) => prove_possession(s, chain, *holder),
            None => match given.next() {
                Some(hex) => Signature::from_hex(hex.trim()).map_err(|e| {
                    local(format!("--possession {hex}: expected 128 hex digits ({e})"))
                })?,
                None => {
                    return Err(local(format!(
                        "key {k} is bound to {holder}: give its key file with --new-key FILE, \
                         or its proof with --possession HEX (`xinlian key possession`)"
                    )));
                }
            },
        };
        out.push(proof);
    }
    if given.next().is_some() {
        return Err(local(
            "more --possession proofs than keys without a --new-key file",
        ));
    }
    Ok(out)
}
