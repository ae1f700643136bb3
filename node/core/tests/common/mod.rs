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
    consortium_with(n, chain_id, policy, Vec::new())
}

/// As [`consortium`], with `extra` members after the registrar.
pub fn consortium_with(
    n: usize,
    chain_id: &str,
    policy: Policy,
    extra: Vec<Member>,
) -> Arc<Consortium> {
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
    members.extend(extra);
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

/// `key`'s proof of possession for enterprise `uscc` on `chain`.
pub fn enterprise_possession(
    chain: &xinlian_genesis::Hash32,
    uscc: &xinlian_client::ids::Uscc,
    key: &SigningKey,
) -> xinlian_client::crypto::Signature {
    use xinlian_client::crypto::{KeyHolder, prove_possession};
    prove_possession(key, chain, KeyHolder::Enterprise(uscc.as_str()))
}

/// A registration of `uscc` binding `key`, with its proof of possession.
pub fn register(
    chain: &xinlian_genesis::Hash32,
    uscc: &xinlian_client::ids::Uscc,
    name: &str,
    key: &SigningKey,
) -> xinlian_client::record::RegisterEntity {
    xinlian_client::record::RegisterEntity {
        operator: None,
        uscc: uscc.clone(),
        name: name.into(),
        key: public_key(key),
        check_override: None,
        possession: enterprise_possession(chain, uscc, key),
    }
}

/// A rotation of `uscc`'s key to `key`, with its proof of possession.
pub fn rotate(
    chain: &xinlian_genesis::Hash32,
    uscc: &xinlian_client::ids::Uscc,
    key: &SigningKey,
) -> xinlian_client::record::RotateEntityKey {
    xinlian_client::record::RotateEntityKey {
        uscc: uscc.clone(),
        new_key: public_key(key),
        possession: enterprise_possession(chain, uscc, key),
    }
}

/// The proofs of possession a proposal of `change` carries, made with `keys` (which
/// must hold every key the change names; others are ignored).
pub fn member_possession(
    chain: &xinlian_genesis::Hash32,
    change: &xinlian_client::record::Change,
    keys: &[&SigningKey],
) -> Vec<xinlian_client::crypto::Signature> {
    use xinlian_client::crypto::{KeyHolder, prove_possession};
    change
        .named_keys()
        .into_iter()
        .map(|(k, member)| {
            let sk = keys
                .iter()
                .find(|sk| public_key(sk) == k)
                .unwrap_or_else(|| panic!("no signing key given for {k}"));
            prove_possession(sk, chain, KeyHolder::Member(member))
        })
        .collect()
}
