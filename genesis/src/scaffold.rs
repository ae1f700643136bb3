//! Creating a consortium from scratch: fresh keys for each member, written as PKCS#8
//! PEM files beside a genesis.toml that names their public halves.

use std::path::{Path, PathBuf};

use crate::keys::{self, KeyError};
use crate::model::{Genesis, GenesisError, Member, Policy, Role};

pub struct MemberSpec {
    pub id: String,
    pub name: String,
    pub region: String,
    pub roles: Vec<Role>,
    pub voting_power: u64,
}

impl MemberSpec {
    /// `n` Shanghai validators `v0…` of power 1: the usual start of a test or
    /// benchmark consortium.
    pub fn validators(n: usize) -> Vec<MemberSpec> {
        (0..n)
            .map(|i| MemberSpec {
                id: format!("v{i}"),
                name: format!("Validator {i}"),
                region: "310000".into(),
                roles: vec![Role::Validator],
                voting_power: 1,
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScaffoldError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} already exists; refusing to overwrite a consortium's keys")]
    Exists(String),
}

pub fn node_key_path(dir: &Path, member: &str) -> PathBuf {
    dir.join("keys").join(format!("{member}.node.pem"))
}

pub fn signing_key_path(dir: &Path, member: &str) -> PathBuf {
    dir.join("keys").join(format!("{member}.signing.pem"))
}

pub fn genesis_path(dir: &Path) -> PathBuf {
    dir.join("genesis.toml")
}

/// Generates keys for every member and writes `DIR/genesis.toml` and `DIR/keys/*.pem`.
/// The written file is re-read and validated, so what is returned is what nodes load.
pub fn scaffold(
    dir: &Path,
    chain_id: &str,
    genesis_time_ms: i64,
    policy: Policy,
    specs: &[MemberSpec],
) -> Result<Genesis, ScaffoldError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ScaffoldError::Io { path, source }
    };
    let gpath = genesis_path(dir);
    if gpath.exists() {
        return Err(ScaffoldError::Exists(gpath.display().to_string()));
    }
    std::fs::create_dir_all(dir.join("keys")).map_err(io(dir))?;
    let mut members = Vec::new();
    for s in specs {
        let runs_node = s
            .roles
            .iter()
            .any(|r| matches!(r, Role::Validator | Role::Observer));
        let node_key = if runs_node {
            let k = keys::generate()?;
            keys::write_pem(&node_key_path(dir, &s.id), &k)?;
            Some(keys::public_key(&k))
        } else {
            None
        };
        let sk = keys::generate()?;
        keys::write_pem(&signing_key_path(dir, &s.id), &sk)?;
        members.push(Member {
            id: s.id.clone(),
            name: s.name.clone(),
            region: s.region.clone(),
            roles: s.roles.clone(),
            voting_power: s.voting_power,
            node_key,
            signing_key: keys::public_key(&sk),
        });
    }
    let genesis = Genesis {
        chain_id: chain_id.to_string(),
        genesis_time_ms,
        policy,
        members,
    };
    let text = genesis.to_toml();
    // Validate before writing: a scaffold never leaves an unusable genesis behind.
    let back = Genesis::from_toml(&text)?;
    std::fs::write(&gpath, text).map_err(io(&gpath))?;
    Ok(back)
}
