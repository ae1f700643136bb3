//! Proofs checked against genesis: the light client kept between runs (the trust
//! file), a record verified online, `xinlian prove` writing an offline bundle and
//! `xinlian verify` checking one (or a record id online).

use std::path::{Path, PathBuf};

use xinlian_client::genesis::{Genesis, Hash32};
use xinlian_client::http::{FetchVerifyError, NodeClient, fetch_verified};
use xinlian_client::proof::{
    BUNDLE_FORMAT, Bundle, LightClient, RecordProof, SignerAuthority, TrustState, VerifiedRecord,
};
use xinlian_client::provenance::{PROVENANCE_BUNDLE_FORMAT, ProvenanceBundle};
use xinlian_client::record::RecordId;

use crate::provenance::print_provenance;
use crate::{
    Cli, Failure, local, parse_record_id, print, read_file, require_genesis, write_atomically,
};

/// The trust file for a chain: --trust, or a per-chain file in the user's state folder.
fn trust_path(cli: &Cli, chain: &Hash32) -> Option<PathBuf> {
    if let Some(p) = &cli.trust {
        return Some(p.clone());
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("xinlian").join(format!("{chain}.trust.json")))
}

/// A light client for `genesis`, resumed from the saved trust state when it still
/// verifies, and where to save it again.
pub(crate) fn load_light(cli: &Cli, genesis: Genesis) -> (LightClient, Option<PathBuf>) {
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

pub(crate) fn save_light(light: &LightClient, path: Option<PathBuf>) {
    if let Some(p) = path {
        let state = serde_json::to_string_pretty(&light.save()).expect("serialises");
        // The trust file is a cache: failing to write it costs only speed next time.
        if let Err(Failure::Local(m)) = write_atomically(&p, state.as_bytes()) {
            eprintln!("note: could not save the trusted header: {m}");
        }
    }
}

pub(crate) fn fetch_failure(e: FetchVerifyError) -> Failure {
    match e {
        FetchVerifyError::Node(e) => Failure::from(e),
        other => Failure::Invalid(other.to_string()),
    }
}

/// Verifies a record fetched from the node, starting from the saved trusted header
/// when there is one, and saves the header it ends at.
pub(crate) fn verify_online(
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

pub(crate) fn describe(v: &VerifiedRecord) -> String {
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

fn verification_failed(e: impl std::fmt::Display) -> Failure {
    Failure::Invalid(format!("verification failed: {e}"))
}

/// `xinlian prove`: an offline bundle proving a final record against its own block.
pub(crate) fn prove(cli: &Cli, node: &NodeClient, id: &str, out: &Path) -> Result<(), Failure> {
    let id = parse_record_id(id)?;
    let g = require_genesis(cli)?;
    let mut light = LightClient::new(g);
    light
        .accept_changes(&node.roster_changes(1)?.changes)
        .map_err(verification_failed)?;
    // A bundle proves against the record's own block, so it also says where
    // the record was appended.
    let proof = node.record_proof(&id, None)?;
    let verified = light.verify_record(&proof).map_err(verification_failed)?;
    if verified.id != id {
        return Err(verification_failed(format!(
            "asked for {id}, the node proved {}",
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
    Ok(())
}

/// `xinlian verify`: a record or provenance bundle FILE offline, or a record id online.
pub(crate) fn verify(cli: &Cli, node: &NodeClient, target: &str) -> Result<(), Failure> {
    let g = require_genesis(cli)?;
    let path = Path::new(target);
    let verified = if path.is_file() {
        let text = read_file(path)?;
        let not_a = |what: &str, e: serde_json::Error| {
            Failure::Invalid(format!("{} is not a {what}: {e}", path.display()))
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| not_a("proof bundle", e))?;
        if value["format"] == PROVENANCE_BUNDLE_FORMAT {
            let bundle: ProvenanceBundle =
                serde_json::from_value(value).map_err(|e| not_a("provenance bundle", e))?;
            let answer =
                LightClient::verify_provenance_bundle(g, &bundle).map_err(verification_failed)?;
            return print_provenance(cli, &answer);
        }
        let bundle: Bundle = serde_json::from_value(value).map_err(|e| not_a("proof bundle", e))?;
        LightClient::verify_bundle(g, &bundle).map_err(verification_failed)?
    } else {
        let id = parse_record_id(target).map_err(|_| {
            local(format!(
                "'{target}' is neither a bundle file nor a record id"
            ))
        })?;
        verify_online(cli, node, g, &id)?.0
    };
    print(cli.json, &verified, || describe(&verified));
    Ok(())
}
