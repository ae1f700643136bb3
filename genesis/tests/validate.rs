//! Genesis validation: every problem is named precisely, and a valid file round-trips
//! to the same chain hash.

use xinlian_genesis::keys::{generate, public_key};
use xinlian_genesis::scaffold::{MemberSpec, scaffold};
use xinlian_genesis::{Genesis, GenesisFile, MemberFile, Policy, Problem, Role};

fn key_hex() -> String {
    public_key(&generate().unwrap()).to_hex()
}

fn member(id: &str, roles: &[&str], power: u64) -> MemberFile {
    MemberFile {
        id: id.into(),
        name: format!("{id} agency"),
        region: "310000".into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        voting_power: power,
        node_key: Some(key_hex()),
        signing_key: key_hex(),
    }
}

fn file(members: Vec<MemberFile>) -> GenesisFile {
    GenesisFile {
        chain_id: "test-chain".into(),
        genesis_time: "2026-11-29T00:00:00+08:00".into(),
        policy: Policy::default(),
        members,
    }
}

fn problems(f: &GenesisFile) -> Vec<Problem> {
    f.validate()
        .expect_err("expected invalid")
        .problems()
        .to_vec()
}

#[test]
fn valid_file_round_trips_to_the_same_hash() {
    let f = file(vec![
        member(
            "a",
            &["validator", "registrar", "credit-authority:market"],
            2,
        ),
        member("b", &["observer"], 0),
    ]);
    let g = f.validate().unwrap();
    let back = Genesis::from_toml(&g.to_toml()).unwrap();
    assert_eq!(g, back);
    assert_eq!(g.hash(), back.hash());
    assert_eq!(g.validator_set().total_power(), 2);
    assert!(
        g.member("a")
            .unwrap()
            .has(&Role::CreditAuthority("market".into()))
    );
}

#[test]
fn hash_changes_with_any_field() {
    let g = file(vec![member("a", &["validator"], 1)])
        .validate()
        .unwrap();
    let mut g2 = g.clone();
    g2.policy.block_interval_ms += 1;
    assert_ne!(g.hash(), g2.hash());
    let mut g3 = g.clone();
    g3.chain_id = "other".into();
    assert_ne!(g.hash(), g3.hash());
}

#[test]
fn duplicate_ids_are_named() {
    let p = problems(&file(vec![
        member("a", &["validator"], 1),
        member("a", &["observer"], 0),
    ]));
    assert!(p.contains(&Problem::DuplicateMember("a".into())), "{p:?}");
}

#[test]
fn unknown_roles_are_named_with_the_accepted_forms() {
    let p = problems(&file(vec![member("a", &["validator", "auditor"], 1)]));
    match &p[..] {
        [Problem::UnknownRole { member, reason }] => {
            assert_eq!(member, "a");
            assert!(
                reason.contains("'auditor'") && reason.contains("credit-authority:DOMAIN"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_keys_are_named_by_member_and_field() {
    let mut m = member("a", &["validator"], 1);
    m.node_key = Some("zz".into());
    let mut n = member("b", &["validator"], 1);
    // The identity point: a small-order key anyone can sign for.
    n.signing_key = format!("01{}", "00".repeat(31));
    let p = problems(&file(vec![m, n]));
    assert!(
        p.iter().any(
            |x| matches!(x, Problem::BadKey { member, field: "node_key", .. } if member == "a")
        ),
        "{p:?}"
    );
    assert!(
        p.iter().any(|x| matches!(x, Problem::BadKey { member, field: "signing_key", reason } if member == "b" && reason.contains("small order"))),
        "{p:?}"
    );
}

#[test]
fn shared_keys_are_refused() {
    let a = member("a", &["validator"], 1);
    let mut b = member("b", &["validator"], 1);
    b.signing_key = a.signing_key.clone();
    let p = problems(&file(vec![a, b]));
    assert!(p.iter().any(|x| matches!(x, Problem::DuplicateKey { first, second, .. } if first == "a" && second == "b")), "{p:?}");
}

#[test]
fn voting_power_rules() {
    let p = problems(&file(vec![
        member("a", &["validator"], 0),
        member("b", &["observer"], 3),
    ]));
    assert!(p.contains(&Problem::ZeroVotingPower("a".into())), "{p:?}");
    assert!(p.contains(&Problem::PowerWithoutVote("b".into())), "{p:?}");
    assert!(
        !p.contains(&Problem::NoValidators),
        "a holds the role, even if with no power"
    );
    let p = problems(&file(vec![member("r", &["observer", "registrar"], 0)]));
    assert_eq!(p, vec![Problem::NoValidators]);
}

#[test]
fn node_key_rules() {
    let mut a = member("a", &["validator"], 1);
    a.node_key = None;
    let b = member("b", &["registrar"], 0);
    let p = problems(&file(vec![a, b]));
    assert!(p.contains(&Problem::MissingNodeKey("a".into())), "{p:?}");
    assert!(p.contains(&Problem::UnusedNodeKey("b".into())), "{p:?}");
}

#[test]
fn policy_and_time_problems() {
    let mut f = file(vec![member("a", &["validator"], 1)]);
    f.genesis_time = "yesterday".into();
    f.policy.block_interval_ms = 0;
    f.policy.publication.general.min_days = 400;
    let p = problems(&f);
    assert!(p.contains(&Problem::Time("yesterday".into())), "{p:?}");
    assert!(
        p.iter()
            .any(|x| matches!(x, Problem::Policy(s) if s.contains("block_interval_ms"))),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|x| matches!(x, Problem::Policy(s) if s.contains("publication.general"))),
        "{p:?}"
    );
}

#[test]
fn unknown_fields_and_bad_syntax_are_syntax_problems() {
    let g = file(vec![member("a", &["validator"], 1)])
        .validate()
        .unwrap();
    let text = g.to_toml().replace("chain_id", "chain_idd");
    let e = Genesis::from_toml(&text).unwrap_err();
    assert!(
        matches!(&e.problems()[0], Problem::Syntax(s) if s.contains("chain_idd")),
        "{e}"
    );
}

#[test]
fn scaffold_writes_loadable_keys() {
    let dir = tempfile::tempdir().unwrap();
    let specs = vec![MemberSpec {
        id: "v0".into(),
        name: "V0".into(),
        region: "310000".into(),
        roles: vec![Role::Validator],
        voting_power: 1,
    }];
    let g = scaffold(dir.path(), "t", 0, Policy::default(), &specs).unwrap();
    let loaded = Genesis::load(&dir.path().join("genesis.toml")).unwrap();
    assert_eq!(g.hash(), loaded.hash());
    let sk = xinlian_genesis::keys::read_pem(&xinlian_genesis::scaffold::signing_key_path(
        dir.path(),
        "v0",
    ))
    .unwrap();
    assert_eq!(public_key(&sk), g.members[0].signing_key);
    assert!(
        scaffold(dir.path(), "t", 0, Policy::default(), &specs).is_err(),
        "must not overwrite"
    );
}
