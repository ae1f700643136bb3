//! `xinlian submit`: a record body from a file and `--field`s, signed, checked locally
//! as every node would, submitted, and optionally waited for and verified.

use std::path::Path;

use std::path::PathBuf;

use xinlian_client::checks::check_stateless;
use xinlian_client::crypto::{KeyHolder, Signature};
use xinlian_client::genesis::{Genesis, keys};
use xinlian_client::http::NodeClient;
use xinlian_client::record::{Body, EncodedRecord, Kind, SignedRecord};
use xinlian_client::signer::RecordSigner;

use crate::key::{chain, possession_proofs};
use crate::verify::{describe, verify_online};
use crate::{Cli, Failure, load_genesis, local, print, read_file};

/// What `xinlian submit` was given.
pub(crate) struct SubmitArgs<'a> {
    pub key: &'a Path,
    pub kind: &'a str,
    pub body: Option<&'a Path>,
    pub fields: &'a [String],
    /// Files of the keys the body binds: they fill the bound key when the body names
    /// none, and sign every proof of possession the body needs.
    pub new_keys: &'a [PathBuf],
    pub wait: bool,
}

pub(crate) fn run(cli: &Cli, node: &NodeClient, a: &SubmitArgs<'_>) -> Result<(), Failure> {
    let kind = Kind::parse(a.kind).map_err(|e| local(e.to_string()))?;
    if a.body.is_none() && a.fields.is_empty() {
        return Err(local(
            "give the body with --body FILE and/or --field PATH=VALUE",
        ));
    }
    let mut value = read_value(a.body, a.fields)?;
    if !a.new_keys.is_empty() {
        fill_bound_key(kind, &mut value, a.new_keys)?;
    }
    let mut body: Body = serde_json::from_value(serde_json::json!({ kind.name(): value }))
        .map_err(|e| {
            let hint = if e.to_string().contains("possession") {
                " (give the bound key's file with --new-key FILE, or make the proof with `xinlian key possession`)"
            } else {
                ""
            };
            Failure::Invalid(format!("not a {} body: {e}{hint}", kind.name()))
        })?;
    if !a.new_keys.is_empty() {
        prove_possession(&mut body, &chain(cli, node)?, a.new_keys)?;
    }
    submit_body(cli, node, a.key, body, a.wait)
}

/// The field of a body kind that names the key it binds to an enterprise.
fn bound_key_field(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::RegisterEntity => Some("key"),
        Kind::RotateEntityKey => Some("new_key"),
        Kind::BindCustodyKey => Some("key"),
        _ => None,
    }
}

/// Before parsing: the bound key from the one `--new-key` file when the body names
/// none, and a stand-in `possession` that [`prove_possession`] replaces.
fn fill_bound_key(
    kind: Kind,
    value: &mut serde_json::Value,
    files: &[PathBuf],
) -> Result<(), Failure> {
    let Some(fields) = value.as_object_mut() else {
        return Ok(());
    };
    if let Some(field) = bound_key_field(kind) {
        if !fields.contains_key(field) {
            let [file] = files else {
                return Err(local(format!(
                    "the body has no '{field}': give it, or exactly one --new-key FILE"
                )));
            };
            let k = keys::read_pem(file).map_err(|e| local(format!("{}: {e}", file.display())))?;
            fields.insert(field.into(), keys::public_key(&k).to_hex().into());
        }
        fields
            .entry("possession")
            .or_insert_with(|| Signature([0; 64]).to_hex().into());
    }
    Ok(())
}

/// Replaces the body's proofs of possession with ones made by the `--new-key` files.
fn prove_possession(
    body: &mut Body,
    chain: &xinlian_client::genesis::Hash32,
    files: &[PathBuf],
) -> Result<(), Failure> {
    match body {
        Body::RegisterEntity(b) => {
            let named = [(b.key, KeyHolder::Enterprise(b.uscc.as_str()))];
            b.possession = possession_proofs(chain, &named, files, &[])?[0];
        }
        Body::RotateEntityKey(b) => {
            let named = [(b.new_key, KeyHolder::Enterprise(b.uscc.as_str()))];
            b.possession = possession_proofs(chain, &named, files, &[])?[0];
        }
        Body::BindCustodyKey(b) => {
            let named = [(b.key, KeyHolder::Custody(&b.domain))];
            b.possession = possession_proofs(chain, &named, files, &[])?[0];
        }
        Body::Propose(p) => {
            let named: Vec<_> = (p.change.named_keys().into_iter())
                .map(|(k, m)| (k, KeyHolder::Member(m)))
                .collect();
            p.possession = possession_proofs(chain, &named, files, &[])?;
        }
        other => {
            return Err(local(format!(
                "--new-key: a {} body binds no key",
                other.kind().name()
            )));
        }
    }
    Ok(())
}

fn read_value(path: Option<&Path>, fields: &[String]) -> Result<serde_json::Value, Failure> {
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
    Ok(value)
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
    // Text goes off the ledger: sealed in the record, sent once the record is final
    // (so a submission with text always waits).
    let mut body = body;
    // Amounts the policy in force hides are opened before signing (the node names a
    // batch's domain; a wrong answer only gets the record refused, `amount_form`).
    if !body.amounts().is_empty() {
        let trace = node.roster()?.roster.policy.trace;
        xinlian_client::hidden::open_per_policy(&mut body, &trace, |b| {
            xinlian_client::epcis::ShipmentLookup::domain_of(node, b)
        });
    }
    let fields =
        xinlian_client::private::seal(&mut body).map_err(|e| Failure::Invalid(e.to_string()))?;
    let rec = signer.sign(body);
    // Refuse locally what every node would refuse, with the same words.
    check_stateless(&EncodedRecord::new(rec.clone()), &signer.chain)
        .map_err(|e| Failure::Invalid(e.to_string()))?;
    if !fields.is_empty() {
        let v = node.submit_and_wait(&rec, 30_000)?;
        let data = xinlian_client::private::PrivateData {
            record: v.id,
            fields,
        };
        if v.height.is_none() {
            let file = crate::private::keep(&data)?;
            return Err(Failure::Invalid(format!(
                "{} accepted but not final within 30 s; its private text is kept in {file}: once it is final, `xinlian private put {file}`",
                v.id
            )));
        }
        let note = crate::private::send_after_submit(node, &signer.key, &data)?;
        print(cli.json, &v, || {
            format!("{} final at height {}; {note}", v.id, v.height.unwrap_or(0))
        });
        return Ok(());
    }
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

/// Submits, waiting for blocks while the node's mempool is full.
pub(crate) fn submit_patiently(node: &NodeClient, r: &SignedRecord) -> Result<(), Failure> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        match node.submit(r) {
            Ok(_) => return Ok(()),
            Err(xinlian_client::http::ClientError::Refused { code, .. })
                if code == "mempool_full" && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Refusals of a whole bulk request that are waited out (for at most `PATIENCE`).
const RETRIED: [&str; 3] = ["busy", "rate_limited", "overloaded"];

/// The longest `submit-signed` waits without getting a record in.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// Most bytes of records in one bulk request: under the smallest body bound a node
/// may be configured with (`api.check_body_mb`, 1 MiB).
const REQUEST_BYTES_MAX: usize = 1 << 19;

/// Where the request starting at `start` ends: at most a request's records and bytes,
/// and at least one record.
fn request_end(records: &[EncodedRecord], start: usize) -> usize {
    let mut bytes = 0;
    let mut end = start;
    while end < records.len() && end - start < xinlian_client::bulk::RECORDS_PER_REQUEST_MAX {
        bytes += records[end].bytes().len() + 3;
        if bytes > REQUEST_BYTES_MAX && end > start {
            break;
        }
        end += 1;
    }
    end
}

/// Most records one bulk file may hold.
const BULK_RECORDS_MAX: usize = 1_000_000;

/// `xinlian submit-signed FILE`: records signed elsewhere, one JSON signed record per
/// line (as `xinlian record --json` shows them under `record`), submitted in order in
/// requests of up to a thousand (`POST /v1/records/bulk`), waiting out a full mempool
/// or a busy node. A record already pending or final (`duplicate`: a run again after an
/// interruption) counts as in. After a request with refused records it stops, naming
/// each one and saying how many went in (the others of that request did). With
/// `wait`, waits until the last is final.
pub(crate) fn bulk(cli: &Cli, node: &NodeClient, file: &Path, wait: bool) -> Result<(), Failure> {
    let text = read_file(file)?;
    let mut records = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if records.len() == BULK_RECORDS_MAX {
            return Err(local(format!(
                "{}: more than {BULK_RECORDS_MAX} records",
                file.display()
            )));
        }
        let r: SignedRecord = serde_json::from_str(line).map_err(|e| {
            local(format!(
                "{} line {}: not a signed record: {e}",
                file.display(),
                n + 1
            ))
        })?;
        records.push(EncodedRecord::new(r));
    }
    let bar = crate::progress(records.len() as u64, "submit");
    let mut next = 0;
    let mut admitted = 0;
    let mut waiting_since = std::time::Instant::now();
    while next < records.len() {
        let end = request_end(&records, next);
        let sent = &records[next..end];
        let answer = match node.submit_many(sent) {
            Ok(answer) => answer,
            Err(xinlian_client::http::ClientError::Refused { code, .. })
                if RETRIED.contains(&code.as_str()) && waiting_since.elapsed() < PATIENCE =>
            {
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
            Err(e) => {
                bar.abandon();
                eprintln!(
                    "the request of records {} to {end} was refused; {admitted} of {} submitted before it",
                    next + 1,
                    records.len()
                );
                return Err(e.into());
            }
        };
        // The answer must be about what was sent, record by record.
        if answer.results.len() != sent.len()
            || answer.results.iter().zip(sent).any(|(a, r)| a.id != r.id())
        {
            bar.abandon();
            return Err(Failure::Invalid(format!(
                "the node answered {} verdicts that are not those of the {} records sent (records {} to {end})",
                answer.results.len(),
                sent.len(),
                next + 1
            )));
        }
        let mut taken = 0;
        let mut refused = Vec::new();
        for (k, (verdict, r)) in answer.results.iter().zip(sent).enumerate() {
            match verdict.code.as_deref() {
                // Already pending or final (a run again after an interruption): in.
                None | Some("duplicate") => admitted += 1,
                // The node refuses the rest of a request untried once its mempool is
                // full: they are sent again.
                Some("mempool_full") => break,
                Some(_) => {
                    let message = verdict.message.clone().unwrap_or_default();
                    refused.push((next + k + 1, r.id(), message));
                }
            }
            taken = k + 1;
        }
        if !refused.is_empty() {
            bar.abandon();
            for (n, id, message) in &refused {
                eprintln!("record {n} ({id}) refused: {message}");
            }
            eprintln!(
                "{admitted} of {} submitted: every record before record {}, and the others of records {} to {} not named above",
                records.len(),
                next + 1,
                next + 1,
                next + taken
            );
            let (n, _, message) = &refused[0];
            return Err(Failure::Invalid(format!("record {n} refused: {message}")));
        }
        bar.inc(taken as u64);
        if taken > 0 {
            waiting_since = std::time::Instant::now();
        } else if waiting_since.elapsed() >= PATIENCE {
            bar.abandon();
            return Err(Failure::Invalid(format!(
                "the node's mempool stayed full for {} s; {admitted} of {} submitted",
                PATIENCE.as_secs(),
                records.len()
            )));
        } else {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        next += taken;
    }
    bar.finish_and_clear();
    let last = records.last().map(EncodedRecord::id);
    if wait && let Some(id) = last {
        node.record(&id, 30_000)?;
    }
    print(
        cli.json,
        &serde_json::json!({ "submitted": records.len(), "last": last }),
        || format!("{} records submitted", records.len()),
    );
    Ok(())
}
