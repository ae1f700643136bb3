//! Loading a scenario into a fresh chain through a node's HTTP API: for each step,
//! substitute, parse, sign with the step's signer, submit; then wait for the last
//! record to be final and write `DIR/sample.json`, the manifest a new user reads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use xinlian_client::crypto::{KeyHolder, Signature, prove_possession};
use xinlian_client::http::NodeClient;
use xinlian_client::private::PrivateData;
use xinlian_client::record::RecordId;
use xinlian_client::signer::RecordSigner;
use xinlian_genesis::keys;
use xinlian_genesis::scaffold::signing_key_path;
use xinlian_genesis::{Genesis, PublicKey};

use crate::scenario::{Context, Scenario};

/// What a new user needs to try the devnet: written to `DIR/sample.json`.
#[derive(Serialize, Deserialize)]
pub struct SampleManifest {
    pub api: String,
    pub chain_id: String,
    pub genesis_hash: String,
    pub enterprises: Vec<SampleEnterprise>,
    pub batches: Vec<String>,
    /// (step label, record id in hex), in submission order.
    pub records: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
pub struct SampleEnterprise {
    pub slug: String,
    pub name: String,
    pub uscc: String,
    pub key_file: String,
}

pub fn enterprise_key_path(dir: &Path, slug: &str) -> PathBuf {
    dir.join("keys")
        .join("enterprises")
        .join(format!("{slug}.pem"))
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn wait_ready(client: &NodeClient) -> Result<xinlian_client::api::Status> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.status() {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() > deadline => {
                return Err(e).context("node did not come up");
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Loads `scenario` through the node at `api`, unless this chain already has it (a
/// resumed devnet): then the manifest written the first time is returned.
pub(crate) fn load(
    dir: &Path,
    api: &str,
    genesis: &Genesis,
    scenario: &Scenario,
) -> Result<SampleManifest> {
    let client = crate::tls::client(dir, api)?;
    let status = wait_ready(&client)?;
    let manifest_path = dir.join("sample.json");
    if status.height > 0 && manifest_path.exists() {
        let text = std::fs::read_to_string(&manifest_path)?;
        return serde_json::from_str(&text)
            .with_context(|| format!("reading {}", manifest_path.display()));
    }
    let mut keys = HashMap::new();
    for e in &scenario.enterprises {
        let k = keys::read_pem(&enterprise_key_path(dir, &e.slug))?;
        let holder = KeyHolder::Enterprise(e.uscc.as_str());
        let possession = prove_possession(&k, &genesis.hash(), holder);
        keys.insert(e.slug.clone(), (keys::public_key(&k), possession));
    }
    let (records, batches) = submit_steps(&client, dir, genesis, scenario, &keys)?;
    let manifest = SampleManifest {
        api: api.to_string(),
        chain_id: genesis.chain_id.clone(),
        genesis_hash: genesis.hash().to_hex(),
        enterprises: scenario
            .enterprises
            .iter()
            .map(|e| SampleEnterprise {
                slug: e.slug.clone(),
                name: e.name.clone(),
                uscc: e.uscc.to_string(),
                key_file: enterprise_key_path(dir, &e.slug).display().to_string(),
            })
            .collect(),
        batches,
        records,
    };
    // Write then rename: readers never see a half-written manifest.
    let tmp = manifest_path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&manifest)?)?;
    std::fs::rename(&tmp, &manifest_path)?;
    Ok(manifest)
}

type Labelled = Vec<(String, String)>;

/// Submits every step in order, then waits for the last one to be final. Returns the
/// (label, id) of each record and the batches the scenario created.
fn submit_steps(
    client: &NodeClient,
    dir: &Path,
    genesis: &Genesis,
    scenario: &Scenario,
    keys: &HashMap<String, (PublicKey, Signature)>,
) -> Result<(Labelled, Vec<String>)> {
    let now_ms = now_ms();
    let mut ids: HashMap<String, RecordId> = HashMap::new();
    let (mut records, mut batches) = (Vec::new(), Vec::new());
    // Each batch the scenario made, with its domain: what decides whether its amounts
    // are hidden (`policy.trace`).
    let mut domains: HashMap<String, String> = HashMap::new();
    let mut last = None;
    let mut private = Vec::new();
    for (i, step) in scenario.steps.iter().enumerate() {
        let mut body = scenario.body(
            i,
            &Context {
                now_ms,
                ids: &ids,
                keys,
            },
        )?;
        for (batch, domain) in body.new_batches() {
            batches.push(batch.to_string());
            domains.insert(batch.to_string(), domain.to_string());
        }
        xinlian_client::hidden::open_per_policy(&mut body, &genesis.policy.trace, |b| {
            domains.get(b).cloned()
        });
        let what = || format!("step {} '{}'", i + 1, step.label);
        // Text goes off the ledger: sealed in the record, sent once it is final.
        let fields = xinlian_client::private::seal(&mut body).with_context(what)?;
        let signer = signer(dir, genesis, scenario, &step.signer).with_context(what)?;
        let id = client.submit(&signer.sign(body)).with_context(what)?.id;
        if !fields.is_empty() {
            private.push((
                what(),
                signer.key.clone(),
                PrivateData { record: id, fields },
            ));
        }
        ids.insert(step.label.clone(), id);
        records.push((step.label.clone(), id.to_hex()));
        last = Some(id);
    }
    if let Some(last) = last {
        client
            .record(&last, 20_000)
            .context("waiting for the sample data to be final")?;
    }
    // Each sent by its record's signer, signing the request with the record's key.
    for (what, key, data) in private {
        client
            .unsigned()
            .signed_by(xinlian_client::http::RequestSigner::for_key(key))
            .put_private(&data)
            .with_context(|| format!("{what}: its private text"))?;
    }
    Ok((records, batches))
}

/// An enterprise slug signs with its key; a member id with the agency's signing key.
fn signer(dir: &Path, genesis: &Genesis, scenario: &Scenario, who: &str) -> Result<RecordSigner> {
    let path = if scenario.enterprise(who).is_some() {
        enterprise_key_path(dir, who)
    } else if genesis.members.iter().any(|m| m.id == who) {
        signing_key_path(dir, who)
    } else {
        anyhow::bail!(
            "signer '{who}' is not a member of this devnet's genesis ({})",
            genesis
                .members
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    Ok(RecordSigner {
        key: keys::read_pem(&path).with_context(|| format!("signer '{who}'"))?,
        chain: genesis.hash(),
    })
}
