//! Proofs a node serves and a light client checks from the genesis file alone.
//!
//! A client trusts nothing but genesis. From it, it knows the chain id and the first
//! validator set; each later set is accepted only when a header certified by the set
//! before it announces the new set's hash. A header is final when its certificate
//! carries precommits of more than two thirds of the set in force at its height. A
//! record is on the ledger when its canonical bytes hash, through an RFC 9162 inclusion
//! path, to the ledger root of such a header; it is authentic when its signature holds
//! and its signer is a genesis member or an enterprise whose key binding is itself
//! proven on the same ledger. The client keeps its latest verified header and moves
//! forward only along consistency proofs, so the ledger it has seen can only grow.
//!
//! Everything here is sans-IO: the HTTP client and the CLI fetch, this module decides.

use serde::{Deserialize, Serialize};
use xinlian_genesis::{Genesis, Hash32, Member, Roster, ValidatorSet};

use crate::authority::authority;
use crate::block::{Certificate, CertificateError, Header, verify_certificate};
use crate::checks::{StatelessError, check_unsigned};
use crate::ids::Uscc;
use crate::merkle::{ProofError, verify_consistency, verify_inclusion};
use crate::record::{Body, DecodeError, EncodedRecord, RecordId, SignedRecord};

/// The form of an offline bundle; a verifier refuses any other.
pub const BUNDLE_FORMAT: &str = "xinlian-proof/v1";
/// Most key bindings a proof may cite for one signer (rotations chain through earlier keys).
pub const KEY_BINDINGS_MAX: usize = 16;
/// Most roster changes one answer or bundle may carry.
pub const ROSTER_CHANGES_MAX: usize = 4096;

/// Bytes that read as hex in JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HexBytes(pub Vec<u8>);

impl Serialize for HexBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        hex::decode(s.as_ref())
            .map(HexBytes)
            .map_err(|e| serde::de::Error::custom(format!("expected hex: {e}")))
    }
}

/// A finalized header with the certificate that finalised it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub header: Header,
    pub certificate: Certificate,
}

/// One leaf of the ledger-wide tree with its inclusion path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub index: u64,
    /// Canonical signed-record bytes: the Merkle leaf, and what the signature covers.
    pub record: HexBytes,
    /// RFC 9162 audit path to the checkpoint's ledger root.
    pub inclusion: Vec<Hash32>,
}

/// A new roster (members, their keys and roles, the validator set, policy), in force
/// from `height`, announced by the header just before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterChange {
    pub height: u64,
    pub roster: Roster,
    /// The header at `height - 1`, certified by the validators of the roster it
    /// replaces, whose `next_roster_hash` names `roster`.
    pub announced_by: Checkpoint,
}

/// What `GET /v1/records/{id}/proof` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordProof {
    pub entry: LedgerEntry,
    pub checkpoint: Checkpoint,
    /// For a record signed by an enterprise: the records that bound its key, the one
    /// binding the signer's key first, each later one binding the key that signed the
    /// one before, ending with one signed by a registrar. Empty for member signers.
    pub key_bindings: Vec<LedgerEntry>,
}

/// What `GET /v1/ledger/consistency` answers: RFC 9162 PROOF(first, D[second]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    pub first: u64,
    pub second: u64,
    pub proof: Vec<Hash32>,
}

/// Everything needed to check one record with no network: `xinlian prove` writes it,
/// `xinlian verify` reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    pub format: String,
    pub chain: Hash32,
    /// Every roster change up to the checkpoint's height, oldest first.
    pub roster_changes: Vec<RosterChange>,
    pub proof: RecordProof,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SignerAuthority {
    /// A consortium member's signing key, in the roster in force when it was recorded.
    Member { id: String, roles: Vec<String> },
    /// An enterprise key, bound by these records (newest first), the last signed by
    /// the registrar named.
    Enterprise {
        uscc: Uscc,
        bound_by: Vec<RecordId>,
        registrar: String,
    },
    /// A custody key for `domain`, bound by the `bind_custody_key` record `bound_by`,
    /// signed by the registrar named. Which enterprise holds it is the binding's sealed
    /// private data.
    Custody {
        domain: String,
        bound_by: RecordId,
        registrar: String,
    },
}

/// A record whose finality, inclusion, signature and signer were all checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedRecord {
    pub id: RecordId,
    pub record: SignedRecord,
    pub ledger_index: u64,
    /// The height of the header the proof was checked against: the record is final at
    /// or before it.
    pub final_at: u64,
    /// The block that appended the record, when the checkpoint is that block.
    pub block_height: Option<u64>,
    pub checkpoint_hash: Hash32,
    pub signer: SignerAuthority,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("bundle format '{0}' is not {BUNDLE_FORMAT}")]
    Format(String),
    #[error("{what} is for chain {got}, but the genesis is chain {expected}")]
    WrongChain {
        what: &'static str,
        expected: Hash32,
        got: Hash32,
    },
    #[error("header at height {height} is not final: {source}")]
    Certificate {
        height: u64,
        #[source]
        source: CertificateError,
    },
    #[error("roster change at height {height}: {reason}")]
    RosterChange { height: u64, reason: String },
    /// A certified header names a next roster other than the one the client holds for
    /// that height: the node left out a roster change (one that may keep the validator
    /// set, so the certificate alone cannot tell).
    #[error(
        "header {height} names roster {announced} as the one in force at height {next}, but the roster this client holds there hashes to {held}: a roster change is missing from the answer"
    )]
    MissingRosterChange {
        height: u64,
        next: u64,
        announced: Hash32,
        held: Hash32,
    },
    #[error("record bytes at ledger index {index} are malformed: {source}")]
    RecordBytes {
        index: u64,
        #[source]
        source: DecodeError,
    },
    #[error("record {id} is not valid: {source}")]
    Record {
        id: RecordId,
        #[source]
        source: StatelessError,
    },
    #[error("record {id} is not at ledger index {index} of header {height}: {source}")]
    Inclusion {
        id: RecordId,
        index: u64,
        height: u64,
        #[source]
        source: ProofError,
    },
    #[error("signer of record {id} has no proven authority: {reason}")]
    Authority { id: RecordId, reason: String },
    #[error(
        "ledger of header {new_height} (size {new_size}) does not extend the trusted ledger of header {old_height} (size {old_size}): {reason}"
    )]
    Consistency {
        old_height: u64,
        old_size: u64,
        new_height: u64,
        new_size: u64,
        reason: String,
    },
    #[error("asked for record {expected}, the proof is of record {got}")]
    WrongRecord { expected: RecordId, got: RecordId },
}

/// A client's view of the chain: genesis, the rosters it has verified, and the newest
/// header it has verified.
#[derive(Clone, Debug)]
pub struct LightClient {
    genesis: Genesis,
    chain: Hash32,
    /// Strictly increasing heights; the first is genesis's roster at height 1.
    epochs: Vec<Epoch>,
    /// The verified changes behind `epochs[1..]`, kept to persist and to put in bundles.
    changes: Vec<RosterChange>,
    trusted: Option<Checkpoint>,
}

/// A roster and where it is in force: from `height`, and from ledger index
/// `first_index` (the ledger size of the header announcing it), so a record's roster
/// follows from its index alone.
#[derive(Clone, Debug)]
struct Epoch {
    height: u64,
    first_index: u64,
    roster: Roster,
    validators: ValidatorSet,
}

/// What a client keeps between runs. Loading it re-verifies everything against
/// genesis, so the file needs no more protection than any cache.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustState {
    pub chain: Hash32,
    pub roster_changes: Vec<RosterChange>,
    pub trusted: Option<Checkpoint>,
}

impl LightClient {
    pub fn new(genesis: Genesis) -> Self {
        let chain = genesis.hash();
        let epochs = vec![Epoch {
            height: 1,
            first_index: 0,
            roster: genesis.roster(),
            validators: genesis.validator_set(),
        }];
        LightClient {
            genesis,
            chain,
            epochs,
            changes: Vec::new(),
            trusted: None,
        }
    }

    /// Rebuilds a client from saved state, checking it as if it came from a node.
    pub fn restore(genesis: Genesis, state: &TrustState) -> Result<Self, VerifyError> {
        let mut c = LightClient::with_changes(
            genesis,
            "saved trust state",
            state.chain,
            &state.roster_changes,
        )?;
        if let Some(cp) = &state.trusted {
            c.advance(cp.clone(), None)?;
        }
        Ok(c)
    }

    /// A fresh client for `genesis` that has followed `changes`, which `what` claims
    /// are of chain `chain`.
    pub(crate) fn with_changes(
        genesis: Genesis,
        what: &'static str,
        chain: Hash32,
        changes: &[RosterChange],
    ) -> Result<Self, VerifyError> {
        let mut c = LightClient::new(genesis);
        if chain != c.chain {
            return Err(VerifyError::WrongChain {
                what,
                expected: c.chain,
                got: chain,
            });
        }
        c.accept_changes(changes)?;
        Ok(c)
    }

    pub fn save(&self) -> TrustState {
        TrustState {
            chain: self.chain,
            roster_changes: self.changes.clone(),
            trusted: self.trusted.clone(),
        }
    }

    /// The verified roster changes in force at or before `height`, for a bundle.
    pub fn changes_until(&self, height: u64) -> Vec<RosterChange> {
        self.changes
            .iter()
            .filter(|c| c.height <= height)
            .cloned()
            .collect()
    }

    pub fn chain(&self) -> Hash32 {
        self.chain
    }

    /// The newest header this client has verified, if any.
    pub fn trusted(&self) -> Option<&Checkpoint> {
        self.trusted.as_ref()
    }

    /// The height of the last roster change this client has verified (1 for genesis's
    /// roster): a node is asked only for changes after it.
    pub fn rosters_known_from(&self) -> u64 {
        self.epochs.last().expect("genesis roster").height
    }

    fn epoch_at(&self, height: u64) -> &Epoch {
        let i = self.epochs.partition_point(|e| e.height <= height);
        &self.epochs[i.max(1) - 1]
    }

    /// The validator set in force at `height` as far as this client knows.
    pub fn validators_at(&self, height: u64) -> &ValidatorSet {
        &self.epoch_at(height).validators
    }

    /// The roster in force at `height` as far as this client knows.
    pub fn roster_at(&self, height: u64) -> &Roster {
        &self.epoch_at(height).roster
    }

    /// The roster in force when the record at ledger index `index` was appended.
    pub fn roster_of_index(&self, index: u64) -> &Roster {
        let i = self.epochs.partition_point(|e| e.first_index <= index);
        &self.epochs[i.max(1) - 1].roster
    }

    /// The member whose signing key `key` was when the record at `index` was appended.
    pub fn member_at_index(&self, key: &xinlian_genesis::PublicKey, index: u64) -> Option<&Member> {
        self.roster_of_index(index).member_by_signing_key(key)
    }

    /// Accepts roster changes in order; each must be announced by a header that the
    /// validators before it certified. Changes already known are skipped if identical.
    pub fn accept_changes(&mut self, changes: &[RosterChange]) -> Result<(), VerifyError> {
        if changes.len() > ROSTER_CHANGES_MAX {
            return Err(VerifyError::RosterChange {
                height: 0,
                reason: format!("more than {ROSTER_CHANGES_MAX} changes"),
            });
        }
        for c in changes {
            let fail = |reason: String| VerifyError::RosterChange {
                height: c.height,
                reason,
            };
            if let Some(known) = self.epochs.iter().find(|e| e.height == c.height) {
                if known.roster == c.roster {
                    continue;
                }
                return Err(fail("conflicts with a roster already verified".into()));
            }
            let last = self.rosters_known_from();
            if c.height <= last {
                return Err(fail(format!(
                    "out of order: changes up to height {last} are already verified"
                )));
            }
            // The trusted header passed `check_next_roster` with every change up to
            // the height after it already known: a new one there contradicts it.
            if let Some(t) = &self.trusted
                && c.height <= t.header.height.saturating_add(1)
            {
                return Err(fail(format!(
                    "the trusted header at height {} names roster {} for height {}; a change at height {} contradicts it",
                    t.header.height,
                    t.header.next_roster_hash,
                    t.header.height + 1,
                    c.height
                )));
            }
            let problems = c.roster.problems();
            if let Some(p) = problems.first() {
                return Err(fail(format!("the roster is not valid: {p}")));
            }
            let hd = &c.announced_by.header;
            if hd.height.checked_add(1) != Some(c.height) {
                return Err(fail(format!(
                    "announced by a header at height {}, not {}",
                    hd.height,
                    c.height - 1
                )));
            }
            // The announcing header names the new roster, not the one held before it.
            self.check_certified(&c.announced_by)?;
            if hd.next_roster_hash != c.roster.hash() {
                return Err(fail(format!(
                    "the announcing header names next roster {}, this roster hashes to {}",
                    hd.next_roster_hash,
                    c.roster.hash()
                )));
            }
            self.epochs.push(Epoch {
                height: c.height,
                first_index: hd.ledger_size,
                validators: c.roster.validator_set(),
                roster: c.roster.clone(),
            });
            self.changes.push(c.clone());
        }
        Ok(())
    }

    /// Checks that a header belongs to this chain, that its certificate holds under
    /// the set in force at its height, and that the roster it names for the next
    /// height is the one this client holds there. The last matters even when the
    /// validator set stays: a node that leaves out a change of members, keys, roles
    /// or policy would otherwise have the client judge records by a stale roster.
    pub fn check_checkpoint(&self, cp: &Checkpoint) -> Result<(), VerifyError> {
        // Already verified: repeat checks against the trusted header cost a comparison.
        if self.trusted.as_ref() == Some(cp) {
            return Ok(());
        }
        self.check_certified(cp)?;
        self.check_next_roster(&cp.header)
    }

    /// Whether `header` names, as the roster in force at the next height, the roster
    /// this client holds there. `Err` names both: the answer lacks a roster change.
    pub fn check_next_roster(&self, header: &Header) -> Result<(), VerifyError> {
        let next = header.height.saturating_add(1);
        let held = self.roster_at(next).hash();
        if header.next_roster_hash != held {
            return Err(VerifyError::MissingRosterChange {
                height: header.height,
                next,
                announced: header.next_roster_hash,
                held,
            });
        }
        Ok(())
    }

    /// The chain and the certificate of a header, under the set in force at its height.
    fn check_certified(&self, cp: &Checkpoint) -> Result<(), VerifyError> {
        if cp.header.chain != self.chain {
            return Err(VerifyError::WrongChain {
                what: "header",
                expected: self.chain,
                got: cp.header.chain,
            });
        }
        verify_certificate(
            &cp.header,
            &cp.certificate,
            self.validators_at(cp.header.height),
        )
        .map_err(|source| VerifyError::Certificate {
            height: cp.header.height,
            source,
        })
    }

    /// Moves the trusted header forward to `cp`. With a trusted header already held,
    /// `consistency` must prove that the new ledger extends the trusted one; a header
    /// at or below the trusted height changes nothing once checked.
    pub fn advance(
        &mut self,
        cp: Checkpoint,
        consistency: Option<&ConsistencyProof>,
    ) -> Result<(), VerifyError> {
        self.check_checkpoint(&cp)?;
        if let Some(old) = &self.trusted {
            let (o, n) = (&old.header, &cp.header);
            let fail = |reason: String| VerifyError::Consistency {
                old_height: o.height,
                old_size: o.ledger_size,
                new_height: n.height,
                new_size: n.ledger_size,
                reason,
            };
            if n.height == o.height {
                return if n == o {
                    Ok(())
                } else {
                    Err(fail("two different final headers at one height".into()))
                };
            }
            let (earlier, later) = if n.height > o.height { (o, n) } else { (n, o) };
            if later.ledger_size < earlier.ledger_size {
                return Err(fail("the later header has the smaller ledger".into()));
            }
            if earlier.ledger_size > 0 {
                let p = consistency.ok_or_else(|| fail("no consistency proof given".into()))?;
                if (p.first, p.second) != (earlier.ledger_size, later.ledger_size) {
                    return Err(fail(format!(
                        "the proof is between sizes {} and {}",
                        p.first, p.second
                    )));
                }
                verify_consistency(
                    earlier.ledger_size,
                    later.ledger_size,
                    &earlier.ledger_root,
                    &later.ledger_root,
                    &p.proof,
                )
                .map_err(|e| fail(e.to_string()))?;
            }
            if n.height < o.height {
                return Ok(());
            }
        }
        self.trusted = Some(cp);
        Ok(())
    }

    /// Checks a record proof completely: the checkpoint's finality, the record's bytes,
    /// chain, fields and signature, its inclusion, and its signer's authority.
    pub fn verify_record(&self, proof: &RecordProof) -> Result<VerifiedRecord, VerifyError> {
        self.check_checkpoint(&proof.checkpoint)?;
        let header = &proof.checkpoint.header;
        let rec = self.verify_entry(&proof.entry, header)?;
        let signer = self.signer_authority(&rec, proof, header)?;
        let first_of_block = header.ledger_size - u64::from(header.records_count);
        Ok(VerifiedRecord {
            id: rec.id(),
            ledger_index: proof.entry.index,
            final_at: header.height,
            block_height: (proof.entry.index >= first_of_block).then_some(header.height),
            checkpoint_hash: header.hash(),
            signer,
            record: rec.into_record(),
        })
    }

    /// Checks an offline bundle as a fresh client holding only `genesis`.
    pub fn verify_bundle(genesis: Genesis, bundle: &Bundle) -> Result<VerifiedRecord, VerifyError> {
        if bundle.format != BUNDLE_FORMAT {
            return Err(VerifyError::Format(bundle.format.clone()));
        }
        LightClient::with_changes(genesis, "bundle", bundle.chain, &bundle.roster_changes)?
            .verify_record(&bundle.proof)
    }

    pub(crate) fn verify_entry(
        &self,
        e: &LedgerEntry,
        header: &Header,
    ) -> Result<EncodedRecord, VerifyError> {
        let rec = self.verify_entry_unsigned(e, header)?;
        rec.verify_signature()
            .map_err(|source| VerifyError::Record {
                id: rec.id(),
                source: source.into(),
            })?;
        Ok(rec)
    }

    /// A ledger entry's bytes, fields and inclusion under `header`; the signature is
    /// the caller's to check (singly, or in a batch with others).
    pub(crate) fn verify_entry_unsigned(
        &self,
        e: &LedgerEntry,
        header: &Header,
    ) -> Result<EncodedRecord, VerifyError> {
        // Policy changes may raise the record bound up to the genesis block bound.
        let max = self.genesis.policy.block_bytes_max as usize;
        let rec =
            EncodedRecord::decode(&e.record.0, max).map_err(|source| VerifyError::RecordBytes {
                index: e.index,
                source,
            })?;
        check_unsigned(rec.record(), &self.chain).map_err(|source| VerifyError::Record {
            id: rec.id(),
            source,
        })?;
        verify_inclusion(
            &rec.leaf(),
            e.index,
            header.ledger_size,
            &e.inclusion,
            &header.ledger_root,
        )
        .map_err(|source| VerifyError::Inclusion {
            id: rec.id(),
            index: e.index,
            height: header.height,
            source,
        })?;
        Ok(rec)
    }

    fn signer_authority(
        &self,
        rec: &EncodedRecord,
        proof: &RecordProof,
        header: &Header,
    ) -> Result<SignerAuthority, VerifyError> {
        let id = rec.id();
        let fail = |reason: String| VerifyError::Authority { id, reason };
        let signer = rec.record().envelope.signer;
        if self.is_member_key(&signer, proof.entry.index) {
            if !proof.key_bindings.is_empty() {
                return Err(fail(
                    "signed by a member but the proof cites key bindings".into(),
                ));
            }
            return self.member_authority(rec, proof.entry.index);
        }
        let authority = self.enterprise_authority(id, &signer, &proof.key_bindings, header)?;
        check_bound_before(&proof.key_bindings, proof.entry.index).map_err(fail)?;
        custody_key_signs(&authority, &rec.record().envelope.body).map_err(fail)?;
        Ok(authority)
    }

    /// The authority of a record at ledger index `index` signed by a member's key: its
    /// roles in the roster then in force, checked against the table of who may sign
    /// what ([`authority`]) where the body alone decides the role needed.
    pub(crate) fn member_authority(
        &self,
        rec: &EncodedRecord,
        index: u64,
    ) -> Result<SignerAuthority, VerifyError> {
        let signer = rec.record().envelope.signer;
        let m = self
            .member_at_index(&signer, index)
            .expect("called for member keys");
        if let Some(role) = authority(&rec.record().envelope.body).member_role()
            && !m.has(&role)
        {
            return Err(VerifyError::Authority {
                id: rec.id(),
                reason: format!(
                    "a {} record needs the role '{role}', which member '{}' lacks",
                    rec.kind().name(),
                    m.id
                ),
            });
        }
        Ok(SignerAuthority::Member {
            id: m.id.clone(),
            roles: m.roles.iter().map(|r| r.to_string()).collect(),
        })
    }

    pub(crate) fn is_member_key(&self, key: &xinlian_genesis::PublicKey, index: u64) -> bool {
        self.member_at_index(key, index).is_some()
    }

    /// Checks that `bindings` bind enterprise key `signer` back to a registrar's
    /// record on the ledger of `header`: the first binds `signer`, each later one binds
    /// the key that signed the one before, and the last is signed by a registrar.
    pub(crate) fn enterprise_authority(
        &self,
        id: RecordId,
        signer: &xinlian_genesis::PublicKey,
        bindings: &[LedgerEntry],
        header: &Header,
    ) -> Result<SignerAuthority, VerifyError> {
        let fail = |reason: String| VerifyError::Authority { id, reason };
        if bindings.is_empty() {
            return Err(fail(format!(
                "key {signer} is not a member's and the proof cites no binding for it"
            )));
        }
        if bindings.len() > KEY_BINDINGS_MAX {
            return Err(fail(format!("more than {KEY_BINDINGS_MAX} key bindings")));
        }
        let (mut key, mut before, mut uscc) = (*signer, u64::MAX, None::<Uscc>);
        let mut bound_by = Vec::new();
        for b in bindings {
            if b.index >= before {
                return Err(fail(format!(
                    "binding at ledger index {} does not precede the binding it authorises (index {before})",
                    b.index
                )));
            }
            let br = self.verify_entry(b, header)?;
            let (bound_uscc, bound_key) = match &br.record().envelope.body {
                Body::RegisterEntity(x) => (&x.uscc, x.key),
                Body::RotateEntityKey(x) => (&x.uscc, x.new_key),
                Body::BindCustodyKey(x) => {
                    // A custody key is bound once, by a registrar, and never rotated.
                    if x.key != key || bindings.len() != 1 {
                        return Err(fail(format!(
                            "custody key binding {} must be the one binding cited, of the signer's key",
                            br.id()
                        )));
                    }
                    let by = br.record().envelope.signer;
                    let registrar = self
                        .member_at_index(&by, b.index)
                        .filter(|m| m.has(&xinlian_genesis::Role::Registrar))
                        .ok_or_else(|| {
                            fail(format!(
                                "custody key binding {} is not signed by a consortium registrar",
                                br.id()
                            ))
                        })?;
                    return Ok(SignerAuthority::Custody {
                        domain: x.domain.clone(),
                        bound_by: br.id(),
                        registrar: registrar.id.clone(),
                    });
                }
                _ => {
                    return Err(fail(format!(
                        "record {} is a {}, not a key binding",
                        br.id(),
                        br.kind().name()
                    )));
                }
            };
            if bound_key != key {
                return Err(fail(format!(
                    "record {} binds key {bound_key}, not {key}",
                    br.id()
                )));
            }
            if uscc.as_ref().is_some_and(|u| u != bound_uscc) {
                return Err(fail(format!(
                    "record {} binds a key of {bound_uscc}, not of {}",
                    br.id(),
                    uscc.expect("some")
                )));
            }
            uscc = Some(bound_uscc.clone());
            bound_by.push(br.id());
            let by = br.record().envelope.signer;
            if let Some(m) = self.member_at_index(&by, b.index) {
                // The table's rule for both kinds of binding: a member must be a registrar.
                let needed = authority(&br.record().envelope.body).member_role();
                if needed.is_some_and(|r| !m.has(&r)) {
                    return Err(fail(format!(
                        "binding {} is signed by member '{}', who is not a registrar",
                        br.id(),
                        m.id
                    )));
                }
                if bound_by.len() != bindings.len() {
                    return Err(fail("key bindings continue past a registrar's".into()));
                }
                return Ok(SignerAuthority::Enterprise {
                    uscc: bound_uscc.clone(),
                    bound_by,
                    registrar: m.id.clone(),
                });
            }
            if matches!(br.record().envelope.body, Body::RegisterEntity(_)) {
                return Err(fail(format!(
                    "registration {} is not signed by a consortium registrar",
                    br.id()
                )));
            }
            (key, before) = (by, b.index);
        }
        Err(fail(format!(
            "the bindings end at key {key}, which no registrar bound"
        )))
    }
}

/// Every record's signature, in one batch verification (the same rule as single
/// checks); an error names the first bad record.
pub(crate) fn verify_signatures<'r>(
    records: impl Iterator<Item = &'r EncodedRecord>,
) -> Result<(), VerifyError> {
    let items: Vec<&EncodedRecord> = records.collect();
    if let Err(bad) = crate::crypto::verify_batch(items.iter().map(|r| {
        (
            &r.record().envelope.signer,
            crate::crypto::Domain::Record.message(r.envelope_bytes()),
            &r.record().signature,
        )
    })) {
        let r = items[bad[0]];
        let source = r
            .verify_signature()
            .err()
            .unwrap_or(crate::crypto::SignatureError::Invalid(
                r.record().envelope.signer,
            ));
        return Err(VerifyError::Record {
            id: r.id(),
            source: source.into(),
        });
    }
    Ok(())
}

/// A custody key signs custody events only (`authority::custody_key_may_sign`).
pub(crate) fn custody_key_signs(a: &SignerAuthority, body: &Body) -> Result<(), String> {
    match a {
        SignerAuthority::Custody { domain, .. }
            if !crate::authority::custody_key_may_sign(body) =>
        {
            Err(format!(
                "a {} signed by the custody key for domain {domain}, which signs custody events only",
                body.kind().name()
            ))
        }
        _ => Ok(()),
    }
}

/// A key binding authorises only records after it on the ledger.
pub(crate) fn check_bound_before(
    bindings: &[LedgerEntry],
    record_index: u64,
) -> Result<(), String> {
    match bindings.first() {
        Some(b) if b.index >= record_index => Err(format!(
            "binding at ledger index {} does not precede the record it authorises (index {record_index})",
            b.index
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use xinlian_genesis::keys::{SigningKey, public_key};
    use xinlian_genesis::{Policy, Role};

    use super::*;
    use crate::record::{Envelope, ListAction, ListKind, ListMeasure, RotateEntityKey, Vote};
    use crate::when::Date;

    /// A custody key's authority covers custody events and nothing else: a light
    /// client refuses, say, a key revocation or a vote it signed.
    #[test]
    fn a_custody_key_signs_custody_events_only() {
        let a = SignerAuthority::Custody {
            domain: "drug".into(),
            bound_by: RecordId([1; 32]),
            registrar: "registrar".into(),
        };
        let recall = Body::Recall(crate::record::Recall {
            batch: "b".into(),
            reason: "r".into(),
            time: crate::when::EventTime {
                unix_ms: 0,
                offset_minutes: 480,
            },
        });
        assert_eq!(custody_key_signs(&a, &recall), Ok(()));
        for body in [
            Body::RevokeCustodyKey(crate::record::RevokeCustodyKey {
                key: xinlian_genesis::PublicKey([2; 32]),
                reason: "r".into(),
            }),
            Body::Vote(Vote {
                proposal: RecordId([3; 32]),
                approve: true,
            }),
        ] {
            let e = custody_key_signs(&a, &body).unwrap_err();
            assert!(e.contains("signs custody events only"), "{e}");
        }
    }

    /// A member's record verifies only if the member holds the role that the body
    /// alone decides, by the table of who may sign what; rules that depend on ledger
    /// state are the validators' to enforce.
    #[test]
    fn member_signers_need_the_role_the_body_decides() {
        let (v, market) = (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
        );
        let member = |id: &str, roles, k: &SigningKey, node: bool| Member {
            id: id.into(),
            name: id.into(),
            region: "310000".into(),
            voting_power: u64::from(node),
            roles,
            node_key: node.then(|| public_key(&SigningKey::from_bytes(&[9; 32]))),
            signing_key: public_key(k),
        };
        let client = LightClient::new(Genesis {
            chain_id: "test".into(),
            genesis_time_ms: 0,
            policy: Policy::default(),
            members: vec![
                member("validator", vec![Role::Validator], &v, true),
                member(
                    "market",
                    vec![Role::CreditAuthority("market".into())],
                    &market,
                    false,
                ),
            ],
        });
        let signed = |body: Body| {
            let env = Envelope {
                chain: client.chain(),
                signer: public_key(&market),
                nonce: 1,
                body,
            };
            EncodedRecord::new(env.sign(&market))
        };
        let uscc = Uscc("91310117MA1G0A1B2P".into());
        let list = |domain: &str| {
            Body::from(ListMeasure {
                subject: uscc.clone(),
                list: ListKind::Reward,
                action: ListAction::Add,
                domain: domain.into(),
                basis: vec![],
                reason: "model enterprise".into(),
                date: Date::parse("2026-01-01").expect("a date"),
            })
        };
        let refusal = |body: Body| {
            client
                .member_authority(&signed(body), 0)
                .expect_err("refused")
                .to_string()
        };
        assert!(client.member_authority(&signed(list("market")), 0).is_ok());
        assert!(
            refusal(list("drug")).ends_with(
                "a list_measure record needs the role 'credit-authority:drug', which member 'market' lacks"
            )
        );
        let rotate = RotateEntityKey {
            uscc: uscc.clone(),
            new_key: public_key(&v),
            possession: crate::crypto::Signature([0; 64]),
        };
        assert!(
            refusal(rotate.into())
                .ends_with("needs the role 'registrar', which member 'market' lacks")
        );
        // Who may vote depends on the proposal: not for a light client to decide.
        let vote = Vote {
            proposal: RecordId([3; 32]),
            approve: true,
        };
        assert!(client.member_authority(&signed(vote.into()), 0).is_ok());
    }

    /// A header certified by `keys` (the genesis validators, unchanged by the roster
    /// change), at `height`, naming `next` as the next height's roster.
    fn certified(g: &Genesis, keys: &[SigningKey], height: u64, next: &Roster) -> Checkpoint {
        use crate::block::{CommitSignature, Precommit};
        let set = g.validator_set();
        let header = Header {
            chain: g.hash(),
            height,
            parent: Hash32([height as u8; 32]),
            time_ms: 1_000 + height as i64,
            proposer: set.validators()[0].key,
            records_root: crate::merkle::empty_root(),
            records_count: 0,
            ledger_root: crate::merkle::empty_root(),
            ledger_size: 0,
            state_hash: Hash32([0; 32]),
            trace_root: Hash32([0; 32]),
            credit_root: Hash32([0; 32]),
            validators_hash: set.hash(),
            next_roster_hash: next.hash(),
        };
        let block = header.hash();
        let signatures = set
            .validators()
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let k = keys.iter().find(|k| public_key(k) == v.key).expect("a key");
                let p = Precommit {
                    chain: header.chain,
                    height,
                    round: 0,
                    block,
                    validator: v.key,
                };
                CommitSignature {
                    validator: i as u16,
                    signature: p.sign(k),
                }
            })
            .collect();
        Checkpoint {
            certificate: Certificate {
                height,
                round: 0,
                block,
                signatures,
            },
            header,
        }
    }

    /// A node that leaves out a roster change keeping the validator set (here a
    /// member's role) cannot have its headers accepted: each names the next roster,
    /// and the client holds another one there.
    #[test]
    fn an_answer_omitting_a_member_only_roster_change_is_refused() {
        let keys: Vec<SigningKey> = (0..4)
            .map(|i| SigningKey::from_bytes(&[10 + i; 32]))
            .collect();
        let mut members: Vec<Member> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| Member {
                id: format!("v{i}"),
                name: format!("validator {i}"),
                region: "310000".into(),
                roles: vec![Role::Validator],
                voting_power: 1,
                node_key: Some(public_key(k)),
                signing_key: public_key(&SigningKey::from_bytes(&[20 + i as u8; 32])),
            })
            .collect();
        members.push(Member {
            id: "market".into(),
            name: "market".into(),
            region: "310000".into(),
            roles: vec![Role::CreditAuthority("market".into())],
            voting_power: 0,
            node_key: None,
            signing_key: public_key(&SigningKey::from_bytes(&[30; 32])),
        });
        let g = Genesis {
            chain_id: "test".into(),
            genesis_time_ms: 0,
            policy: Policy::default(),
            members,
        };
        // From height 10 the market authority may no longer sign credit records.
        let old = g.roster();
        let mut new = old.clone();
        new.members[4].roles = vec![Role::CreditAuthority("drug".into())];
        assert_eq!(new.validator_set(), old.validator_set());
        assert!(new.problems().is_empty(), "{:?}", new.problems());
        let change = RosterChange {
            height: 10,
            roster: new.clone(),
            announced_by: certified(&g, &keys, 9, &new),
        };
        let later = certified(&g, &keys, 12, &new);

        // The answer without the change: its certificate holds, its next roster does not.
        let mut lc = LightClient::new(g.clone());
        let e = lc.check_checkpoint(&later).unwrap_err();
        assert_eq!(
            e,
            VerifyError::MissingRosterChange {
                height: 12,
                next: 13,
                announced: new.hash(),
                held: old.hash(),
            }
        );
        assert!(e.to_string().contains("a roster change is missing"), "{e}");
        assert_eq!(lc.advance(later.clone(), None).unwrap_err(), e);
        assert!(lc.trusted().is_none(), "nothing was trusted");
        assert!(matches!(
            lc.check_checkpoint(&change.announced_by),
            Err(VerifyError::MissingRosterChange { height: 9, .. })
        ));
        // Headers before the change still verify under the roster they name.
        lc.check_checkpoint(&certified(&g, &keys, 8, &old)).unwrap();

        // With the change supplied (and its proof), the same header is accepted.
        lc.accept_changes(std::slice::from_ref(&change)).unwrap();
        lc.advance(later.clone(), None).unwrap();
        assert_eq!(lc.roster_at(12), &new);

        // Once a header is trusted, a change at or before the height after it
        // contradicts what it named and is refused.
        let fork = RosterChange {
            height: 13,
            roster: old.clone(),
            announced_by: certified(&g, &keys, 12, &old),
        };
        let e = lc.accept_changes(&[fork]).unwrap_err();
        assert!(e.to_string().contains("contradicts"), "{e}");
        assert_eq!(lc.rosters_known_from(), 10);
    }
}
