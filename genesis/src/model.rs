//! The genesis: chain id, members with their roles and keys, and consortium policy.
//! Parsed from a human-edited TOML file, validated with precise problems, and hashed in
//! canonical form: that hash is the chain id every signed message binds.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::bytes::{Hash32, PublicKey};
use crate::canonical::tagged_hash;
use crate::roster::{Members, Roster};
use crate::validators::ValidatorSet;

pub const MEMBERS_MAX: usize = 256;
pub const TEXT_BYTES_MAX: usize = 256;
pub const ID_BYTES_MAX: usize = 64;

/// The canonical genesis. Field order is part of the chain's identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    pub chain_id: String,
    pub genesis_time_ms: i64,
    pub policy: Policy,
    pub members: Vec<Member>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: String,
    pub name: String,
    /// Administrative division code (GB/T 2260), e.g. `310000` for Shanghai.
    pub region: String,
    pub roles: Vec<Role>,
    pub voting_power: u64,
    /// The node's identity: its libp2p peer id and its consensus signing key.
    pub node_key: Option<PublicKey>,
    /// The agency's key for the statements it records (outcomes, lists, inspections…).
    pub signing_key: PublicKey,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    Validator,
    Observer,
    Registrar,
    /// May record verification outcomes, list measures and repair decisions in a domain.
    CreditAuthority(String),
    /// May record inspections and recalls of batches in a domain.
    TraceAuthority(String),
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Validator => f.write_str("validator"),
            Role::Observer => f.write_str("observer"),
            Role::Registrar => f.write_str("registrar"),
            Role::CreditAuthority(d) => write!(f, "credit-authority:{d}"),
            Role::TraceAuthority(d) => write!(f, "trace-authority:{d}"),
        }
    }
}

impl Role {
    pub const FORMS: &'static str =
        "validator, observer, registrar, credit-authority:DOMAIN, trace-authority:DOMAIN";

    pub fn parse(s: &str) -> Result<Role, String> {
        let domain = |d: &str| -> Result<String, String> {
            check_slug(d, 32)
                .map(|_| d.to_string())
                .map_err(|e| format!("domain '{d}' {e}"))
        };
        match s.split_once(':') {
            None if s == "validator" => Ok(Role::Validator),
            None if s == "observer" => Ok(Role::Observer),
            None if s == "registrar" => Ok(Role::Registrar),
            Some(("credit-authority", d)) => Ok(Role::CreditAuthority(domain(d)?)),
            Some(("trace-authority", d)) => Ok(Role::TraceAuthority(domain(d)?)),
            _ => Err(format!(
                "unknown role '{s}' (expected one of: {})",
                Role::FORMS
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Target time between blocks.
    pub block_interval_ms: u64,
    pub block_records_max: u32,
    pub block_bytes_max: u32,
    pub record_bytes_max: u32,
    /// How far a proposed block's time may run ahead of a validator's clock.
    pub block_time_drift_ms_max: u64,
    pub publication: Publication,
    /// How grades are derived from credit records (docs/credit.md).
    #[serde(default)]
    pub grading: crate::grading::Grading,
    /// Which trace-event fields each trace domain hides from the public
    /// (docs/privacy.md § Trace events). Absent: every field public.
    #[serde(default)]
    pub trace: TracePolicy,
}

/// Commercial confidentiality in traceability: the fields each trace domain hides.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracePolicy {
    #[serde(default)]
    pub domains: Vec<TraceDomain>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceDomain {
    pub domain: String,
    pub hide: Vec<TraceField>,
}

/// A trace-event field a domain may hide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceField {
    /// The amounts of commissions, shipments, transforms and sales.
    Quantity,
    /// Who takes part: a batch made while its domain hides counterparties names its
    /// parties by custody keys (`bind_custody_key`), never by USCC, for its life.
    Counterparty,
}

impl TracePolicy {
    /// A policy under which `domain` hides its quantities and every other domain
    /// publishes them.
    pub fn hiding_quantities(domain: &str) -> TracePolicy {
        TracePolicy::hiding(domain, &[TraceField::Quantity])
    }

    /// A policy under which `domain` hides `fields` and every other domain publishes
    /// everything.
    pub fn hiding(domain: &str, fields: &[TraceField]) -> TracePolicy {
        TracePolicy {
            domains: vec![TraceDomain {
                domain: domain.to_string(),
                hide: fields.to_vec(),
            }],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// Whether `domain` hides `field`.
    pub fn hides(&self, domain: &str, field: TraceField) -> bool {
        self.domains
            .iter()
            .any(|d| d.domain == domain && d.hide.contains(&field))
    }

    fn problems(&self, out: &mut Vec<String>) {
        let mut seen = std::collections::BTreeSet::new();
        for d in &self.domains {
            if let Err(e) = check_slug(&d.domain, 32) {
                out.push(format!("trace.domains: domain '{}' {e}", d.domain));
            }
            if !seen.insert(d.domain.as_str()) {
                out.push(format!("trace.domains: '{}' is named twice", d.domain));
            }
            if d.hide.is_empty() {
                out.push(format!("trace.domains.{}: hide names no field", d.domain));
            }
            let mut fields = d.hide.clone();
            fields.sort();
            fields.dedup();
            if fields.len() != d.hide.len() {
                out.push(format!(
                    "trace.domains.{}: hide names a field twice",
                    d.domain
                ));
            }
        }
    }
}

/// Publication periods per breach tier (national measures in force from 2026-04-01),
/// with exceptions by domain (docs/privacy.md § Publication periods).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publication {
    pub minor: Tier,
    pub general: Tier,
    pub serious: Tier,
    /// Domains whose tiers differ from the ones above (food and drug safety, say).
    #[serde(default)]
    pub domains: Vec<DomainPublication>,
}

/// The three tiers of one credit domain, replacing the defaults there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainPublication {
    pub domain: String,
    pub minor: Tier,
    pub general: Tier,
    pub serious: Tier,
}

/// A breach's severity, as the publication tiers know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TierName {
    Minor,
    General,
    Serious,
}

impl Publication {
    /// The tier in force for a breach of `severity` in `domain`: the domain's exception
    /// if genesis names one, else the default. The one look-up execution and disclosure
    /// both use.
    pub fn tier(&self, domain: &str, severity: TierName) -> &Tier {
        let (minor, general, serious) = match self.domains.iter().find(|d| d.domain == domain) {
            Some(d) => (&d.minor, &d.general, &d.serious),
            None => (&self.minor, &self.general, &self.serious),
        };
        match severity {
            TierName::Minor => minor,
            TierName::General => general,
            TierName::Serious => serious,
        }
    }

    fn problems(&self, out: &mut Vec<String>) {
        let mut tiers = vec![
            ("publication.minor".to_string(), &self.minor),
            ("publication.general".to_string(), &self.general),
            ("publication.serious".to_string(), &self.serious),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for d in &self.domains {
            if let Err(e) = check_slug(&d.domain, 32) {
                out.push(format!("publication.domains: domain '{}' {e}", d.domain));
            }
            if !seen.insert(d.domain.as_str()) {
                out.push(format!(
                    "publication.domains: '{}' is named twice",
                    d.domain
                ));
            }
            for (name, t) in [
                ("minor", &d.minor),
                ("general", &d.general),
                ("serious", &d.serious),
            ] {
                tiers.push((format!("publication.domains.{}.{name}", d.domain), t));
            }
        }
        for (name, t) in tiers {
            if t.min_days > t.max_days {
                out.push(format!(
                    "{name}: min_days {} exceeds max_days {}",
                    t.min_days, t.max_days
                ));
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// A repair application is accepted only once this many days have passed since the
    /// determining date.
    pub min_days: u32,
    /// Publication ends by itself after this many days.
    pub max_days: u32,
    pub repairable: bool,
    /// Whether breaches of this tier are published at all (minor ones normally are
    /// not). Absent in older genesis files: published.
    #[serde(default = "published_by_default")]
    pub published: bool,
}

fn published_by_default() -> bool {
    true
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            // 200 ms keeps p99 submit→final under 500 ms at half load (289 ms measured;
            // 711 ms at 500 ms), for about a fifth less peak throughput on a shared
            // 2-core machine: docs/performance.md.
            block_interval_ms: 200,
            block_records_max: 4096,
            block_bytes_max: 4 << 20,
            record_bytes_max: 16 << 10,
            block_time_drift_ms_max: 2_000,
            publication: Publication {
                // Minor breaches are normally not published (at most 3 months).
                minor: Tier {
                    min_days: 0,
                    max_days: 90,
                    repairable: true,
                    published: false,
                },
                general: Tier {
                    min_days: 90,
                    max_days: 365,
                    repairable: true,
                    published: true,
                },
                serious: Tier {
                    min_days: 365,
                    max_days: 1095,
                    repairable: true,
                    published: true,
                },
                domains: Vec::new(),
            },
            grading: crate::grading::Grading::default(),
            trace: TracePolicy::default(),
        }
    }
}

/// The TOML form: roles and keys as text, time as RFC 3339.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisFile {
    pub chain_id: String,
    pub genesis_time: String,
    pub policy: Policy,
    #[serde(default)]
    pub members: Vec<MemberFile>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberFile {
    pub id: String,
    pub name: String,
    pub region: String,
    pub roles: Vec<String>,
    #[serde(default)]
    pub voting_power: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_key: Option<String>,
    pub signing_key: String,
}

/// One thing wrong with a genesis file. All are reported at once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    #[error("not valid TOML for a genesis: {0}")]
    Syntax(String),
    #[error("chain_id: {0}")]
    ChainId(String),
    #[error("genesis_time '{0}' is not an RFC 3339 time such as 2026-11-29T00:00:00Z")]
    Time(String),
    #[error("policy: {0}")]
    Policy(String),
    #[error("no members")]
    NoMembers,
    #[error("{0} members exceed the bound of {MEMBERS_MAX}")]
    TooManyMembers(usize),
    #[error("member #{index}: id '{id}' {reason}")]
    BadId {
        index: usize,
        id: String,
        reason: String,
    },
    #[error("member '{0}' appears more than once")]
    DuplicateMember(String),
    #[error("member '{member}': {field} is longer than {TEXT_BYTES_MAX} bytes or empty")]
    BadText { member: String, field: &'static str },
    #[error("member '{member}': {reason}")]
    UnknownRole { member: String, reason: String },
    #[error("member '{member}': role '{role}' is listed twice")]
    DuplicateRole { member: String, role: String },
    #[error("member '{member}': {field} is not a usable ed25519 public key: {reason}")]
    BadKey {
        member: String,
        field: &'static str,
        reason: String,
    },
    #[error("key {key} is used by both '{first}' and '{second}'")]
    DuplicateKey {
        key: PublicKey,
        first: String,
        second: String,
    },
    #[error("member '{0}' is a validator with zero voting power")]
    ZeroVotingPower(String),
    #[error("member '{0}' has voting power but is not a validator")]
    PowerWithoutVote(String),
    #[error("member '{0}' runs a node (validator or observer) but has no node_key")]
    MissingNodeKey(String),
    #[error("member '{0}' has a node_key but neither the validator nor the observer role")]
    UnusedNodeKey(String),
    #[error("member '{0}' cannot be both validator and observer")]
    ValidatorAndObserver(String),
    #[error("no validators: at least one member needs the validator role")]
    NoValidators,
    #[error("total voting power overflows")]
    PowerOverflow,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenesisError {
    #[error("cannot read genesis {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid genesis:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

impl GenesisError {
    pub fn problems(&self) -> &[Problem] {
        match self {
            GenesisError::Invalid(p) => p,
            GenesisError::Read { .. } => &[],
        }
    }
}

pub(crate) fn check_slug(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() || s.len() > max {
        return Err(format!("must be 1 to {max} characters"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err("may contain only a-z, 0-9, '-' and '.'".into());
    }
    Ok(())
}

fn parse_key(
    member: &str,
    field: &'static str,
    text: &str,
    problems: &mut Vec<Problem>,
) -> Option<PublicKey> {
    match PublicKey::from_hex(text.trim()) {
        Ok(k) => Some(k),
        Err(e) => {
            problems.push(Problem::BadKey {
                member: member.to_string(),
                field,
                reason: format!("expected 64 hex digits ({e})"),
            });
            None
        }
    }
}

pub fn parse_time_ms(text: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

pub fn format_time_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms"))
}

impl Policy {
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(10..=60_000).contains(&self.block_interval_ms) {
            out.push(format!(
                "block_interval_ms {} is outside 10..=60000",
                self.block_interval_ms
            ));
        }
        if self.block_records_max == 0 {
            out.push("block_records_max must be at least 1".into());
        }
        if !(256..=(64 << 20)).contains(&self.block_bytes_max) {
            out.push(format!(
                "block_bytes_max {} is outside 256..=67108864",
                self.block_bytes_max
            ));
        }
        if self.record_bytes_max < 256 || self.record_bytes_max > self.block_bytes_max {
            out.push(format!(
                "record_bytes_max {} must be at least 256 and at most block_bytes_max {}",
                self.record_bytes_max, self.block_bytes_max
            ));
        }
        if self.block_time_drift_ms_max == 0 {
            out.push("block_time_drift_ms_max must be positive".into());
        }
        self.publication.problems(&mut out);
        self.trace.problems(&mut out);
        out.extend(self.grading.problems());
        out
    }
}

impl GenesisFile {
    /// Validates everything and returns the canonical genesis, or every problem found.
    pub fn validate(&self) -> Result<Genesis, GenesisError> {
        let mut problems = Vec::new();
        if let Err(e) = check_slug(&self.chain_id, ID_BYTES_MAX) {
            problems.push(Problem::ChainId(e));
        }
        let genesis_time_ms = parse_time_ms(&self.genesis_time).unwrap_or_else(|| {
            problems.push(Problem::Time(self.genesis_time.clone()));
            0
        });
        problems.extend(self.policy.problems().into_iter().map(Problem::Policy));
        if self.members.is_empty() {
            problems.push(Problem::NoMembers);
        }
        if self.members.len() > MEMBERS_MAX {
            problems.push(Problem::TooManyMembers(self.members.len()));
        }

        // Text is parsed here; every rule on typed members is the roster's, which
        // governance changes are held to as well. A member whose keys do not parse
        // cannot be typed and is left out of those rules (its problem is named here).
        let mut members = Vec::new();
        let mut untyped = false;
        for m in &self.members {
            let mut roles = Vec::new();
            for r in &m.roles {
                match Role::parse(r) {
                    Ok(role) => roles.push(role),
                    Err(reason) => problems.push(Problem::UnknownRole {
                        member: m.id.clone(),
                        reason,
                    }),
                }
            }
            roles.sort();
            let node_key = match m.node_key.as_deref() {
                None => Ok(None),
                Some(t) => parse_key(&m.id, "node_key", t, &mut problems)
                    .map(Some)
                    .ok_or(()),
            };
            let signing_key = parse_key(&m.id, "signing_key", &m.signing_key, &mut problems);
            match (node_key, signing_key) {
                (Ok(node_key), Some(signing_key)) => members.push(Member {
                    id: m.id.clone(),
                    name: m.name.clone(),
                    region: m.region.clone(),
                    roles,
                    voting_power: m.voting_power,
                    node_key,
                    signing_key,
                }),
                _ => untyped = true,
            }
        }
        let roster = Roster {
            members,
            policy: self.policy.clone(),
        };
        problems.extend(roster.problems().into_iter().filter(|p| match p {
            // Already counted on the file, not on the typed members.
            Problem::Policy(_) | Problem::NoMembers | Problem::TooManyMembers(_) => false,
            // An untyped member may be the validator.
            Problem::NoValidators => !untyped,
            _ => true,
        }));
        let members = roster.members;
        if !problems.is_empty() {
            return Err(GenesisError::Invalid(problems));
        }
        Ok(Genesis {
            chain_id: self.chain_id.clone(),
            genesis_time_ms,
            policy: self.policy.clone(),
            members,
        })
    }
}

impl Genesis {
    pub fn from_toml(text: &str) -> Result<Genesis, GenesisError> {
        let file: GenesisFile = toml::from_str(text)
            .map_err(|e| GenesisError::Invalid(vec![Problem::Syntax(e.to_string())]))?;
        file.validate()
    }

    pub fn load(path: &std::path::Path) -> Result<Genesis, GenesisError> {
        let text = std::fs::read_to_string(path).map_err(|source| GenesisError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Genesis::from_toml(&text)
    }

    pub fn to_file(&self) -> GenesisFile {
        GenesisFile {
            chain_id: self.chain_id.clone(),
            genesis_time: format_time_ms(self.genesis_time_ms),
            policy: self.policy.clone(),
            members: self
                .members
                .iter()
                .map(|m| MemberFile {
                    id: m.id.clone(),
                    name: m.name.clone(),
                    region: m.region.clone(),
                    roles: m.roles.iter().map(Role::to_string).collect(),
                    voting_power: m.voting_power,
                    node_key: m.node_key.map(|k| k.to_hex()),
                    signing_key: m.signing_key.to_hex(),
                })
                .collect(),
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(&self.to_file()).expect("genesis always serialises to TOML")
    }

    /// The chain id: every envelope, vote and header binds it.
    pub fn hash(&self) -> Hash32 {
        tagged_hash("xinlian/genesis/v1", self)
    }

    /// The roster in force at height 1.
    pub fn roster(&self) -> Roster {
        Roster {
            members: self.members.clone(),
            policy: self.policy.clone(),
        }
    }

    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.by_id(id)
    }

    /// The validators at height 1, in genesis order (their index in certificates).
    pub fn validator_set(&self) -> ValidatorSet {
        self.roster().validator_set()
    }
}

impl Member {
    pub fn has(&self, role: &Role) -> bool {
        self.roles.contains(role)
    }
}
