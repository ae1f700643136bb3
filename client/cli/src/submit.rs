//! `xinlian submit`: a record body from a file and `--field`s, signed, checked locally
//! as every node would, submitted, and optionally waited for and verified.

use std::path::Path;

use xinlian_client::checks::check_stateless;
use xinlian_client::genesis::{Genesis, keys};
use xinlian_client::http::NodeClient;
use xinlian_client::record::{Body, EncodedRecord, Kind};
use xinlian_client::signer::RecordSigner;

use crate::verify::{describe, verify_online};
use crate::{Cli, Failure, load_genesis, local, print, read_file};

pub(crate) fn run(
    cli: &Cli,
    node: &NodeClient,
    key: &Path,
    kind: &str,
    body: Option<&Path>,
    fields: &[String],
    wait: bool,
) -> Result<(), Failure> {
    let kind = Kind::parse(kind).map_err(|e| local(e.to_string()))?;
    if body.is_none() && fields.is_empty() {
        return Err(local(
            "give the body with --body FILE and/or --field PATH=VALUE",
        ));
    }
    let body = read_body(kind, body, fields)?;
    submit_body(cli, node, key, body, wait)
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
        let text = read_file(path)?;
        if path.extension().is_some_and(|e| e == "toml") {
            toml::from_str::<serde_json::Value>(&text)
                .map_err(|e| local(format!("{}: {e}", path.display())))?
        } else {
            serde_json::from_str(&text).map_err(|e| local(format!("{}: {e}", path.display())))?
        }
    })
}

/// A signer with the key in `key` for the chain of `genesis`, or when none is given,
/// the chain the node says it serves.
pub(crate) fn record_signer(
    node: &NodeClient,
    genesis: Option<&Genesis>,
    key: &Path,
) -> Result<RecordSigner, Failure> {
    let chain = match genesis {
        Some(g) => g.hash(),
        None => node.status()?.genesis_hash,
    };
    Ok(RecordSigner {
        key: keys::read_pem(key).map_err(local)?,
        chain,
    })
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
    let signer = record_signer(node, genesis.as_ref(), key)?;
    let rec = signer.sign(body);
    // Refuse locally what every node would refuse, with the same words.
    check_stateless(&EncodedRecord::new(rec.clone()), &signer.chain)
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
