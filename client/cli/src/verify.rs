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

/// A light client for `genesis`, resumed from the saved trust state, and where to save
/// it again. No trust file yet: a fresh client. A trust file that cannot be read, is
/// not a trust state, or does not verify against `genesis` is an error naming it: a
/// client that silently started again from genesis would forget the header it had
/// verified, and with it the check that the ledger it sees only grows.
pub(crate) fn load_light(
    cli: &Cli,
    genesis: Genesis,
) -> Result<(LightClient, Option<PathBuf>), Failure> {
    let chain = genesis.hash();
    let path = trust_path(cli, &chain);
    let Some(p) = &path else {
        return Ok((LightClient::new(genesis), None));
    };
    let text = match std::fs::read_to_string(p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((LightClient::new(genesis), path));
        }
        Err(e) => {
            return Err(local(format!(
                "cannot read the trust file {}: {e}",
                p.display()
            )));
        }
    };
    let damaged = |what: String| {
        local(format!(
            "the trust file {} {what}. It holds the newest header this client verified; to \
             start again from the genesis file alone, move it away (or pass --trust with \
             another path)",
            p.display()
        ))
    };
    let saved: TrustState = serde_json::from_str(&text)
        .map_err(|e| damaged(format!("is damaged: not a trust state ({e})")))?;
    let light = LightClient::restore(genesis, &saved)
        .map_err(|e| damaged(format!("does not verify against this genesis ({e})")))?;
    Ok((light, path))
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
    let (mut light, path) = load_light(cli, genesis)?;
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
        SignerAuthority::Custody {
            domain,
            bound_by,
            registrar,
        } => format!(
            "the custody key for domain {domain} bound by record {bound_by} (registrar '{registrar}'; \
             which enterprise holds it is the binding's private data)"
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
        roster_changes: light.changes_until(verified.final_at + 1),
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
        if value["format"] == xinlian_client::credit::CREDIT_REPORT_FORMAT {
            let report: xinlian_client::credit::CreditReport =
                serde_json::from_value(value).map_err(|e| not_a("credit report", e))?;
            return crate::credit::verify_report(cli, g, &report);
        }
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

#[cfg(test)]
mod tests {
    use clap::Parser;
    use xinlian_client::genesis::keys::{SigningKey, public_key};
    use xinlian_client::genesis::{Member, Policy, Role};

    use super::*;

    fn genesis(chain_id: &str) -> Genesis {
        Genesis {
            chain_id: chain_id.into(),
            genesis_time_ms: 0,
            policy: Policy::default(),
            members: vec![Member {
                id: "v0".into(),
                name: "validator".into(),
                region: "310000".into(),
                roles: vec![Role::Validator],
                voting_power: 1,
                node_key: Some(public_key(&SigningKey::from_bytes(&[1; 32]))),
                signing_key: public_key(&SigningKey::from_bytes(&[2; 32])),
            }],
        }
    }

    /// A folder of its own under the system's temporary folder, removed when dropped.
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn load(trust: &Path, g: Genesis) -> Result<(LightClient, Option<PathBuf>), Failure> {
        let cli = Cli::try_parse_from(["xinlian", "--trust", trust.to_str().unwrap(), "status"])
            .expect("arguments parse");
        load_light(&cli, g)
    }

    fn local_message(r: Result<(LightClient, Option<PathBuf>), Failure>) -> String {
        match r {
            Err(Failure::Local(m)) => m,
            Err(Failure::Invalid(m) | Failure::Unreachable(m)) => panic!("not local: {m}"),
            Ok(_) => panic!("a damaged trust file was accepted"),
        }
    }

    #[test]
    fn a_missing_trust_file_is_a_fresh_start_and_a_damaged_one_an_error_saying_what_to_do() {
        let dir = Scratch(std::env::temp_dir().join(format!(
            "xinlian-cli-trust-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        )));
        std::fs::create_dir_all(&dir.0).unwrap();
        let g = genesis("test");
        let file = dir.0.join("trust.json");

        let (fresh, path) = load(&file, g.clone()).map_err(|_| "missing").unwrap();
        assert!(fresh.trusted().is_none());
        assert_eq!(path.as_deref(), Some(file.as_path()));

        save_light(&fresh, Some(file.clone()));
        load(&file, g.clone()).map_err(|_| "saved").unwrap();

        std::fs::write(&file, "{\"chain\": \"00").unwrap();
        let m = local_message(load(&file, g.clone()));
        assert!(m.contains(&file.display().to_string()), "{m}");
        assert!(m.contains("is damaged"), "{m}");
        assert!(m.contains("move it away") && m.contains("--trust"), "{m}");

        // Well formed, but of another chain: it does not verify, and says so.
        save_light(&LightClient::new(genesis("other")), Some(file.clone()));
        let m = local_message(load(&file, g));
        assert!(m.contains("does not verify against this genesis"), "{m}");
        assert!(m.contains("move it away"), "{m}");
    }
}
