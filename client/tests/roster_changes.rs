//! Following roster changes from genesis: a change is accepted only when a header
//! certified by the outgoing validators announces it, and headers after it verify only
//! under the new set. These chains are made here by hand; `tests/tests/governance.rs`
//! follows ones that governance made on a running consortium.

use xinlian_client::block::{Certificate, CommitSignature, Header, Precommit};
use xinlian_client::merkle::empty_root;
use xinlian_client::proof::{Checkpoint, LightClient, RosterChange, VerifyError};
use xinlian_genesis::keys::{SigningKey, generate, public_key, read_pem};
use xinlian_genesis::scaffold::{MemberSpec, node_key_path, scaffold};
use xinlian_genesis::{Genesis, Hash32, Member, Policy, Role, Roster, ValidatorSet};

struct Fixture {
    _dir: tempfile::TempDir,
    genesis: Genesis,
    /// Node keys of the genesis validators, in set order.
    old_keys: Vec<SigningKey>,
    new_keys: Vec<SigningKey>,
    new_roster: Roster,
    new_set: ValidatorSet,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let specs: Vec<MemberSpec> = MemberSpec::validators(4);
    let genesis = scaffold(dir.path(), "xinlian-test", 0, Policy::default(), &specs).unwrap();
    let old_keys = (0..4)
        .map(|i| read_pem(&node_key_path(dir.path(), &format!("v{i}"))).unwrap())
        .collect();
    let new_keys: Vec<SigningKey> = (0..4).map(|_| generate().unwrap()).collect();
    let new_roster = Roster {
        members: new_keys
            .iter()
            .enumerate()
            .map(|(i, k)| Member {
                id: format!("n{i}"),
                name: format!("new agency {i}"),
                region: "320000".into(),
                roles: vec![Role::Validator],
                voting_power: 1,
                node_key: Some(public_key(k)),
                signing_key: public_key(&generate().unwrap()),
            })
            .collect(),
        policy: Policy::default(),
    };
    let new_set = new_roster.validator_set();
    Fixture {
        _dir: dir,
        genesis,
        old_keys,
        new_keys,
        new_roster,
        new_set,
    }
}

fn header(g: &Genesis, height: u64, set: &ValidatorSet, next: &Roster) -> Header {
    Header {
        chain: g.hash(),
        height,
        parent: Hash32([height as u8; 32]),
        time_ms: 1_000 + height as i64,
        proposer: set.validators()[0].key,
        records_root: empty_root(),
        records_count: 0,
        ledger_root: empty_root(),
        ledger_size: 0,
        state_hash: Hash32([0; 32]),
        trace_root: Hash32([0; 32]),
        credit_root: Hash32([0; 32]),
        validators_hash: set.hash(),
        next_roster_hash: next.hash(),
    }
}

/// Certifies `header` with the precommits of `keys` (indices `signers` of `set`).
fn certify(header: Header, set: &ValidatorSet, keys: &[SigningKey], signers: &[u16]) -> Checkpoint {
    let block = header.hash();
    let signatures = signers
        .iter()
        .map(|&i| {
            let k = &keys[usize::from(i)];
            assert_eq!(set.validators()[usize::from(i)].key, public_key(k));
            CommitSignature {
                validator: i,
                signature: Precommit {
                    chain: header.chain,
                    height: header.height,
                    round: 0,
                    block,
                    validator: public_key(k),
                }
                .sign(k),
            }
        })
        .collect();
    Checkpoint {
        certificate: Certificate {
            height: header.height,
            round: 0,
            block,
            signatures,
        },
        header,
    }
}

#[test]
fn a_change_announced_by_the_outgoing_set_is_followed() {
    let f = fixture();
    let old = f.genesis.validator_set();
    let announcing = certify(
        header(&f.genesis, 9, &old, &f.new_roster),
        &old,
        &f.old_keys,
        &[0, 1, 2],
    );
    let change = RosterChange {
        height: 10,
        roster: f.new_roster.clone(),
        announced_by: announcing,
    };
    let after = certify(
        header(&f.genesis, 12, &f.new_set, &f.new_roster),
        &f.new_set,
        &f.new_keys,
        &[1, 2, 3],
    );

    let mut lc = LightClient::new(f.genesis.clone());
    // Without the change the header names a set the client does not know in force.
    assert!(matches!(
        lc.check_checkpoint(&after),
        Err(VerifyError::Certificate { .. })
    ));
    lc.accept_changes(std::slice::from_ref(&change)).unwrap();
    lc.check_checkpoint(&after).unwrap();
    assert_eq!(lc.validators_at(9), &old);
    assert_eq!(lc.validators_at(10), &f.new_set);
    assert_eq!(lc.roster_at(10), &f.new_roster);
    assert_eq!(lc.roster_at(9), &f.genesis.roster());
    // Accepting the same change again is harmless; it persists and restores.
    lc.accept_changes(std::slice::from_ref(&change)).unwrap();
    let restored = LightClient::restore(f.genesis.clone(), &lc.save()).unwrap();
    assert_eq!(restored.validators_at(11), &f.new_set);

    // The outgoing set can no longer certify headers after the change.
    let stale = certify(
        header(&f.genesis, 12, &old, &f.genesis.roster()),
        &old,
        &f.old_keys,
        &[0, 1, 2],
    );
    assert!(matches!(
        lc.check_checkpoint(&stale),
        Err(VerifyError::Certificate { .. })
    ));
}

#[test]
fn a_change_without_a_quorum_of_the_outgoing_set_is_refused() {
    let f = fixture();
    let old = f.genesis.validator_set();
    // Two of four is not more than two thirds.
    let weak = certify(
        header(&f.genesis, 9, &old, &f.new_roster),
        &old,
        &f.old_keys,
        &[0, 1],
    );
    let mut lc = LightClient::new(f.genesis.clone());
    let e = lc
        .accept_changes(&[RosterChange {
            height: 10,
            roster: f.new_roster.clone(),
            announced_by: weak,
        }])
        .unwrap_err();
    assert!(e.to_string().contains("not more than two thirds"), "{e}");

    // Announced by the new set itself: not the set in force at height 9.
    let self_announced = certify(
        header(&f.genesis, 9, &f.new_set, &f.new_roster),
        &f.new_set,
        &f.new_keys,
        &[0, 1, 2],
    );
    let e = lc
        .accept_changes(&[RosterChange {
            height: 10,
            roster: f.new_roster.clone(),
            announced_by: self_announced,
        }])
        .unwrap_err();
    assert!(matches!(e, VerifyError::Certificate { .. }), "{e}");
    assert_eq!(lc.rosters_known_from(), 1, "nothing was accepted");

    // A roster no genesis could hold (a repeated member) is refused, even when the
    // outgoing validators announced it.
    let mut dup = f.new_roster.clone();
    dup.members.push(dup.members[0].clone());
    let announcing = certify(
        header(&f.genesis, 9, &old, &dup),
        &old,
        &f.old_keys,
        &[0, 1, 2],
    );
    let e = lc
        .accept_changes(&[RosterChange {
            height: 10,
            roster: dup,
            announced_by: announcing,
        }])
        .unwrap_err();
    assert!(e.to_string().contains("appears more than once"), "{e}");
}

/// A store writes a peer's certificate into the place of its own damaged one trimmed
/// to a quorum: the trimmed one still verifies, and none of its signatures is spare.
#[test]
fn a_certificate_trimmed_to_a_quorum_verifies_and_has_no_spare_signature() {
    use xinlian_client::block::{trimmed_to_quorum, verify_certificate};
    let f = fixture();
    let set = f.genesis.validator_set();
    let full = certify(
        header(&f.genesis, 5, &set, &f.genesis.roster()),
        &set,
        &f.old_keys,
        &[0, 1, 2, 3],
    );
    let trimmed = trimmed_to_quorum(&full.certificate, &set);
    assert_eq!(trimmed.signatures.len(), 3, "{trimmed:?}");
    assert!(
        trimmed
            .signatures
            .windows(2)
            .all(|w| w[0].validator < w[1].validator)
    );
    verify_certificate(&full.header, &trimmed, &set).unwrap();
    for drop in 0..trimmed.signatures.len() {
        let mut short = trimmed.clone();
        short.signatures.remove(drop);
        assert!(verify_certificate(&full.header, &short, &set).is_err());
    }
    // Already a quorum and no more: unchanged.
    assert_eq!(trimmed_to_quorum(&trimmed, &set), trimmed);
}
