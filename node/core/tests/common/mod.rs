//! A consortium for replica-level tests: `n` validators `v0…` with power 1 and a
//! registrar, every key derived from a fixed seed so that runs repeat exactly.

use std::sync::Arc;

use xinlian_core::execute::Consortium;
use xinlian_genesis::keys::{SigningKey, public_key};
use xinlian_genesis::{Genesis, Member, Policy, Role};

pub const GENESIS_MS: i64 = 1_795_000_000_000;

/// A key from a fixed seed: `tag` 1 node keys, 2 the registrar, 3 agency keys.
pub fn key(tag: u8, i: usize) -> SigningKey {
    let mut seed = [tag; 32];
    seed[0] = i as u8;
    SigningKey::from_bytes(&seed)
}

pub fn node_key(i: usize) -> SigningKey {
    key(1, i)
}

pub fn registrar() -> SigningKey {
    key(2, 0)
}

pub fn consortium(n: usize, chain_id: &str, policy: Policy) -> Arc<Consortium> {
    let mut members: Vec<Member> = (0..n)
        .map(|i| Member {
            id: format!("v{i}"),
            name: format!("Validator {i}"),
            region: "310000".into(),
            roles: vec![Role::Validator],
            voting_power: 1,
            node_key: Some(public_key(&node_key(i))),
            signing_key: public_key(&key(3, i)),
        })
        .collect();
    members.push(Member {
        id: "registrar".into(),
        name: "Registrar".into(),
        region: "310000".into(),
        roles: vec![Role::Registrar],
        voting_power: 0,
        node_key: None,
        signing_key: public_key(&registrar()),
    });
    let genesis = Genesis {
        chain_id: chain_id.into(),
        genesis_time_ms: GENESIS_MS,
        policy,
        members,
    };
    // The same rules as any genesis file.
    Arc::new(Consortium::new(
        genesis.to_file().validate().expect("valid genesis"),
    ))
}
