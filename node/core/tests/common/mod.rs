//! A consortium for replica-level tests: `n` validators `v0…` with power 1 and a
//! registrar, every key derived from a fixed seed so that runs repeat exactly.
// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::sync::Arc;

use xinlian_core::execute::Consortium;
use xinlian_core::overlay::Writes;
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

/// A member with one region, power 1 if it validates, and the given keys.
pub fn member(id: &str, roles: Vec<Role>, key: &SigningKey, node: Option<&SigningKey>) -> Member {
    Member {
        id: id.into(),
        name: id.into(),
        region: "310000".into(),
        voting_power: u64::from(roles.contains(&Role::Validator)),
        roles,
        node_key: node.map(public_key),
        signing_key: public_key(key),
    }
}

/// A genesis at time 0 with the default policy: a validator `validator` (agency key
/// `v`, node key `vn`), a registrar, then `others`.
pub fn genesis_with(
    chain_id: &str,
    (v, vn, registrar): (&SigningKey, &SigningKey, &SigningKey),
    others: Vec<Member>,
) -> Genesis {
    let mut members = vec![
        member("validator", vec![Role::Validator], v, Some(vn)),
        member("registrar", vec![Role::Registrar], registrar, None),
    ];
    members.extend(others);
    Genesis {
        chain_id: chain_id.into(),
        genesis_time_ms: 0,
        policy: Policy::default(),
        members,
    }
}

/// Applies an overlay's writes to an in-memory state.
pub fn apply(state: &mut std::collections::BTreeMap<Vec<u8>, Vec<u8>>, writes: Writes) {
    for (k, v) in writes {
        match v {
            Some(v) => state.insert(k, v),
            None => state.remove(&k),
        };
    }
}
