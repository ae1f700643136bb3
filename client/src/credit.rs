//! An enterprise's credit record, checked complete from genesis, and what follows from
//! it: the history of its commitments, outcomes, repairs and listings, its profile, its
//! grade under the consortium's rules, and claims of absence ("no serious breach in
//! 2025", "not on the serious-dishonesty list on D").
//!
//! Completeness: every header commits, in `credit_root`, to each enterprise's
//! [`CreditState`] — how many credit records concern it and the hash chain of their
//! (ledger index, id) in order. An answer ([`CreditProof`]) carries the state with its
//! place in the index and every record with its inclusion path; the client recomputes
//! the count and chain, so a record left out, added, altered or moved is refused. The
//! client then replays the records itself ([`CreditHistory::fold`]) and checks that
//! they derive the profile the state commits to, and grades them with [`grade`]: the
//! same function the node answers with, under the rules of the header's roster.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use xinlian_genesis::grading::{Grade, Grading, Weight};
use xinlian_genesis::{Hash32, PublicKey, canonical};

use crate::block::Header;
use crate::ids::Uscc;
use crate::proof::{Checkpoint, HexBytes, LedgerEntry, LightClient, RosterChange, VerifyError};
use crate::record::{
    Body, CommitmentKind, EncodedRecord, Kind, ListAction, ListKind, RecordId, Severity, Verdict,
};
use crate::smt::MapProof;
use crate::state::{CommitmentStatus, CreditState, Profile, next_credit_chain};
use crate::when::Date;

/// The format name of an offline credit report.
pub const CREDIT_REPORT_FORMAT: &str = "xinlian-credit/v1";
/// At most this many records in one enterprise's answer.
pub const CREDIT_RECORDS_MAX: usize = 20_000;
/// Canonical bytes of a credit state are far below this.
pub const CREDIT_STATE_BYTES_MAX: usize = 1024;

/// The record kinds that make up an enterprise's credit record: its registration and
/// keys, its commitments and their outcomes, list measures and repairs. Custody events
/// concern enterprises too but are traceability, proven per batch (`trace_root`).
pub fn is_credit_kind(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::RegisterEntity
            | Kind::RotateEntityKey
            | Kind::RevokeEntityKey
            | Kind::Commitment
            | Kind::Outcome
            | Kind::ListMeasure
            | Kind::RepairApplication
            | Kind::RepairDecision
    )
}

/// What `GET /v1/enterprises/{uscc}/credit` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditProof {
    pub checkpoint: Checkpoint,
    pub uscc: Uscc,
    /// Canonical [`CreditState`]; none when the USCC is not registered.
    pub state: Option<HexBytes>,
    /// The state's place in the header's credit index, or its absence.
    pub index_proof: MapProof,
    /// Every credit record of the enterprise, in ledger order.
    pub records: Vec<LedgerEntry>,
}

/// A credit report: an answer and the roster changes needed to check it from genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditReport {
    pub format: String,
    pub chain: Hash32,
    pub roster_changes: Vec<RosterChange>,
    pub proof: CreditProof,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CreditError {
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("report format '{0}' is not {CREDIT_REPORT_FORMAT}")]
    Format(String),
    #[error("answer exceeds its bounds: {0}")]
    Oversize(String),
    #[error("credit state bytes: {0}")]
    StateBytes(String),
    #[error("asked about {asked}, the proven state is of {got}")]
    WrongEnterprise { asked: Uscc, got: Uscc },
    #[error("the credit state is not the one in the credit index of header {height}: {reason}")]
    NotInIndex { height: u64, reason: String },
    #[error(
        "{uscc} is claimed not registered, but the credit index of header {height} does not prove it absent: {reason}"
    )]
    NotAbsent {
        uscc: Uscc,
        height: u64,
        reason: String,
    },
    /// An answer proven against a header older than the one the client trusts: it
    /// could hide what was recorded since.
    #[error(
        "the answer is proven against header {answer}, older than the trusted header {trusted}: it could omit records since"
    )]
    Stale { answer: u64, trusted: u64 },
    /// A proven state with no registration among its records (never from an honest chain).
    #[error("the credit record of {0} holds no registration")]
    NoRegistration(Uscc),
    /// A claim about a day after the header the answer is proven against: the answer
    /// cannot speak for it.
    #[error(
        "the claim reaches {day}, after the date {as_of} of the header the answer is proven against"
    )]
    BeyondHeader { day: Date, as_of: Date },
    #[error("{uscc} is not registered as of header {height}")]
    NotRegistered { uscc: Uscc, height: u64 },
    #[error(
        "{given} records given, the proven credit state counts {proven}: records are missing or extra"
    )]
    Count { given: usize, proven: u32 },
    #[error("records out of ledger order: index {index} follows index {previous}")]
    Order { index: u64, previous: u64 },
    #[error(
        "the records do not hash to the proven credit chain: one is altered, substituted or out of place"
    )]
    Chain,
    #[error("record {id} at ledger index {index}: {reason}")]
    Record {
        index: u64,
        id: RecordId,
        reason: String,
    },
    #[error("the records derive profile {derived:?}, the proven state holds {proven:?}")]
    Profile {
        derived: Box<Profile>,
        proven: Box<Profile>,
    },
    /// A claim of absence contradicted by a record in the verified history.
    #[error("claim refused: {claim}; record {record} shows otherwise")]
    Claim { claim: String, record: RecordId },
}

/// A record as it appears in a history: which one, and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct At {
    pub id: RecordId,
    pub ledger_index: u64,
    pub date: Date,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeView {
    pub at: At,
    pub verdict: Verdict,
    pub document: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionView {
    pub at: At,
    pub approved: bool,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairView {
    pub application: At,
    pub decision: Option<DecisionView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitmentView {
    pub at: At,
    pub kind: CommitmentKind,
    pub matter: String,
    pub accepting_agency: String,
    pub domain: String,
    pub deadline: Date,
    /// As of the end of the history.
    pub status: CommitmentStatus,
    pub outcome: Option<OutcomeView>,
    pub repairs: Vec<RepairView>,
}

impl CommitmentView {
    /// The approved repair, if any (at most one: a repaired breach is no longer open).
    pub fn repaired(&self) -> Option<&DecisionView> {
        self.repairs
            .iter()
            .filter_map(|r| r.decision.as_ref())
            .find(|d| d.approved)
    }
}

/// One listing: from the measure that added it to the one that removed it, if any.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub list: ListKind,
    pub domain: String,
    pub added: At,
    /// The outcomes (or other records) the listing cites as its justification.
    pub basis: Vec<RecordId>,
    pub reason: String,
    /// The day it lapses by itself: its date plus the listing period of the rules in
    /// force when it was recorded (a removal may end it earlier).
    pub until: Date,
    pub removed: Option<(At, String)>,
}

impl Listing {
    /// Whether the listing is in force on `day`: in effect by then, not lapsed, not
    /// removed by then.
    pub fn in_force(&self, day: Date) -> bool {
        self.added.date <= day
            && day < self.until
            && self.removed.as_ref().is_none_or(|(r, _)| r.date > day)
    }
}

/// An enterprise's verified credit history, replayed from its records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditHistory {
    pub uscc: Uscc,
    pub name: String,
    pub registered: At,
    /// Every credit record, in ledger order: (ledger index, id, kind name).
    pub records: Vec<(u64, RecordId, String)>,
    pub commitments: Vec<CommitmentView>,
    pub listings: Vec<Listing>,
    pub profile: Profile,
}

impl CreditHistory {
    /// Replays an enterprise's credit records, in ledger order, with the rules
    /// execution applied to them: each must concern `uscc` and follow from the ones
    /// before it (an outcome decides a pending commitment of this history; a repair
    /// applies to a breach of it…), and each enterprise-signed record must be signed
    /// by the key the history has bound at that point. `context` says, for a signer at
    /// a ledger index, what the roster in force there says ([`RecordContext`]). The
    /// records must already be proven; a failure means the answer contradicts itself.
    pub fn fold(
        uscc: &Uscc,
        records: &[(u64, EncodedRecord)],
        context: &dyn Fn(&PublicKey, u64) -> RecordContext,
    ) -> Result<CreditHistory, CreditError> {
        let mut f = Fold {
            uscc,
            key: None,
            history: None,
            commitments: Vec::new(),
            by_id: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            repairs: BTreeMap::new(),
            listings: Vec::new(),
            profile: Profile::default(),
            list: Vec::new(),
        };
        for (index, rec) in records {
            let signer = rec.record().envelope.signer;
            let s = Signed {
                index: *index,
                id: rec.id(),
                signer,
                context: context(&signer, *index),
            };
            f.step(&s, &rec.record().envelope.body)
                .map_err(|reason| CreditError::Record {
                    index: *index,
                    id: rec.id(),
                    reason,
                })?;
            f.list
                .push((*index, rec.id(), rec.kind().name().to_string()));
        }
        let Some((name, registered)) = f.history else {
            return Err(CreditError::NoRegistration(uscc.clone()));
        };
        Ok(CreditHistory {
            uscc: uscc.clone(),
            name,
            registered,
            records: f.list,
            commitments: f.commitments,
            listings: f.listings,
            profile: f.profile,
        })
    }

    /// The listings of `list` in force on `day`.
    pub fn listed_on(&self, list: ListKind, day: Date) -> Vec<&Listing> {
        self.listings
            .iter()
            .filter(|l| l.list == list && l.in_force(day))
            .collect()
    }

    /// Proves "no serious breach was determined between `from` and `to` (inclusive)",
    /// or names the breach that refutes it. Sound only on a verified, complete history.
    pub fn no_serious_breach_between(&self, from: Date, to: Date) -> Result<(), CreditError> {
        for c in &self.commitments {
            if let Some(o) = &c.outcome
                && o.verdict == Verdict::Breached(Severity::Serious)
                && from <= o.at.date
                && o.at.date <= to
            {
                return Err(CreditError::Claim {
                    claim: format!("no serious breach of {} between {from} and {to}", self.uscc),
                    record: o.at.id,
                });
            }
        }
        Ok(())
    }

    /// Proves "not on the serious-dishonesty list on `day`", or names the listing that
    /// refutes it.
    pub fn not_seriously_listed_on(&self, day: Date) -> Result<(), CreditError> {
        match self.listed_on(ListKind::SeriousDishonesty, day).first() {
            None => Ok(()),
            Some(l) => Err(CreditError::Claim {
                claim: format!("{} not on the serious-dishonesty list on {day}", self.uscc),
                record: l.added.id,
            }),
        }
    }
}

struct Fold<'u> {
    uscc: &'u Uscc,
    /// The enterprise key bound at this point of the history.
    key: Option<PublicKey>,
    history: Option<(String, At)>,
    commitments: Vec<CommitmentView>,
    by_id: BTreeMap<RecordId, usize>,
    /// Outcome id → commitment position.
    outcomes: BTreeMap<RecordId, usize>,
    /// Application id → (commitment position, repair position).
    repairs: BTreeMap<RecordId, (usize, usize)>,
    listings: Vec<Listing>,
    profile: Profile,
    list: Vec<(u64, RecordId, String)>,
}

/// What the roster in force at a record's ledger index says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordContext {
    /// The member whose key signed it, if a member's did.
    pub member: Option<String>,
    /// The listing periods of the grading rules then in force.
    pub reward_list_days: u32,
    pub serious_list_days: u32,
}

/// The record being replayed: where it is and who signed it.
struct Signed {
    index: u64,
    id: RecordId,
    signer: PublicKey,
    context: RecordContext,
}

impl Signed {
    fn at(&self, date: Date) -> At {
        At {
            id: self.id,
            ledger_index: self.index,
            date,
        }
    }

    /// A member signed it, and where `agency` is named, that member.
    fn by_member(&self, agency: Option<&str>) -> Result<(), String> {
        match (&self.context.member, agency) {
            (None, _) => Err(format!(
                "signed by {}, not by a consortium member",
                self.signer
            )),
            (Some(m), Some(a)) if m != a => Err(format!(
                "signed by member '{m}', not by the accepting agency '{a}'"
            )),
            _ => Ok(()),
        }
    }
}

impl Fold<'_> {
    fn step(&mut self, s: &Signed, body: &Body) -> Result<(), String> {
        if self.history.is_none() && !matches!(body, Body::RegisterEntity(_)) {
            return Err("precedes the enterprise's registration".into());
        }
        match body {
            Body::RegisterEntity(b) => {
                self.concerns(&b.uscc)?;
                if self.history.is_some() {
                    return Err("registers the enterprise a second time".into());
                }
                s.by_member(None)?;
                self.key = Some(b.key);
                self.history = Some((b.name.clone(), s.at(Date(0))));
            }
            Body::RotateEntityKey(b) => {
                self.concerns(&b.uscc)?;
                self.by_registrar_or_enterprise(s)?;
                self.key = Some(b.new_key);
            }
            Body::RevokeEntityKey(b) => {
                self.concerns(&b.uscc)?;
                self.by_registrar_or_enterprise(s)?;
                self.key = None;
            }
            Body::Commitment(b) => self.commitment(s, b)?,
            Body::Outcome(b) => self.outcome(s, b)?,
            Body::ListMeasure(b) => self.list_measure(s, b)?,
            Body::RepairApplication(b) => self.repair_application(s, b)?,
            Body::RepairDecision(b) => self.repair_decision(s, b)?,
            other => {
                return Err(format!("a {} is not a credit record", other.kind().name()));
            }
        }
        Ok(())
    }

    fn concerns(&self, u: &Uscc) -> Result<(), String> {
        if u != self.uscc {
            return Err(format!("concerns {u}, not {}", self.uscc));
        }
        Ok(())
    }

    /// Signed by the key the enterprise had bound at this point of its history.
    fn by_enterprise(&self, s: &Signed) -> Result<(), String> {
        match (&s.context.member, self.key) {
            (Some(m), _) => Err(format!("signed by member '{m}', not by the enterprise")),
            (None, Some(k)) if k == s.signer => Ok(()),
            (None, _) => Err(format!(
                "signed by {}, not by the key the enterprise had bound then",
                s.signer
            )),
        }
    }

    /// Key changes: a member (the table makes it a registrar, which the caller checks
    /// with the roster) or the enterprise's own current key.
    fn by_registrar_or_enterprise(&self, s: &Signed) -> Result<(), String> {
        if s.context.member.is_some() {
            return Ok(());
        }
        self.by_enterprise(s)
    }

    fn commitment(&mut self, s: &Signed, b: &crate::record::Commitment) -> Result<(), String> {
        self.concerns(&b.subject)?;
        self.by_enterprise(s)?;
        self.by_id.insert(s.id, self.commitments.len());
        self.commitments.push(CommitmentView {
            at: s.at(b.date),
            kind: b.kind,
            matter: b.matter.clone(),
            accepting_agency: b.accepting_agency.clone(),
            domain: b.domain.clone(),
            deadline: b.deadline,
            status: CommitmentStatus::Pending,
            outcome: None,
            repairs: Vec::new(),
        });
        self.profile.on_commitment();
        Ok(())
    }

    fn outcome(&mut self, s: &Signed, b: &crate::record::Outcome) -> Result<(), String> {
        let &i = self.by_id.get(&b.commitment).ok_or_else(|| {
            format!(
                "decides commitment {}, not one of this enterprise's",
                b.commitment
            )
        })?;
        let c = &mut self.commitments[i];
        s.by_member(Some(&c.accepting_agency))?;
        if c.status != CommitmentStatus::Pending {
            return Err(format!(
                "decides commitment {}, already decided",
                b.commitment
            ));
        }
        c.status = match b.verdict {
            Verdict::Fulfilled => CommitmentStatus::Fulfilled,
            Verdict::NotVerifiable => CommitmentStatus::NotVerifiable,
            Verdict::Breached(sev) => CommitmentStatus::Breached(sev),
        };
        c.outcome = Some(OutcomeView {
            at: s.at(b.date),
            verdict: b.verdict,
            document: b.document.clone(),
        });
        self.profile.on_outcome(c.kind, c.status);
        self.outcomes.insert(s.id, i);
        Ok(())
    }

    fn list_measure(&mut self, s: &Signed, b: &crate::record::ListMeasure) -> Result<(), String> {
        self.concerns(&b.subject)?;
        s.by_member(None)?;
        let open = self
            .listings
            .iter_mut()
            .find(|l| l.list == b.list && l.removed.is_none());
        match (b.action, open) {
            (ListAction::Add, Some(l)) => {
                return Err(format!(
                    "adds to the {:?} list, already listed by {}",
                    b.list, l.added.id
                ));
            }
            (ListAction::Add, None) => {
                if let Some(r) = b.basis.iter().find(|r| !self.outcomes.contains_key(r)) {
                    return Err(format!("cites {r}, not an outcome of this enterprise"));
                }
                let days = match b.list {
                    ListKind::Reward => s.context.reward_list_days,
                    ListKind::SeriousDishonesty => s.context.serious_list_days,
                };
                self.listings.push(Listing {
                    list: b.list,
                    domain: b.domain.clone(),
                    added: s.at(b.date),
                    basis: b.basis.clone(),
                    reason: b.reason.clone(),
                    until: b.date.plus_days(days),
                    removed: None,
                });
            }
            (ListAction::Remove, Some(l)) => l.removed = Some((s.at(b.date), b.reason.clone())),
            (ListAction::Remove, None) => {
                return Err(format!("removes from the {:?} list, not listed", b.list));
            }
        }
        let until = self
            .listings
            .iter()
            .rev()
            .find(|l| l.list == b.list && l.removed.is_none())
            .map(|l| l.until);
        self.profile.set_listed(b.list, until);
        Ok(())
    }

    fn repair_application(
        &mut self,
        s: &Signed,
        b: &crate::record::RepairApplication,
    ) -> Result<(), String> {
        self.by_enterprise(s)?;
        let &i = self
            .outcomes
            .get(&b.outcome)
            .ok_or_else(|| format!("repairs {}, not an outcome of this enterprise", b.outcome))?;
        let c = &mut self.commitments[i];
        if !matches!(c.status, CommitmentStatus::Breached(_)) {
            return Err(format!(
                "repairs a commitment whose status is {:?}",
                c.status
            ));
        }
        if c.repairs.iter().any(|r| r.decision.is_none()) {
            return Err("an earlier application is still open".into());
        }
        self.repairs.insert(s.id, (i, c.repairs.len()));
        c.repairs.push(RepairView {
            application: s.at(b.date),
            decision: None,
        });
        Ok(())
    }

    fn repair_decision(
        &mut self,
        s: &Signed,
        b: &crate::record::RepairDecision,
    ) -> Result<(), String> {
        let &(i, j) = self.repairs.get(&b.application).ok_or_else(|| {
            format!(
                "decides {}, not a repair application of this enterprise",
                b.application
            )
        })?;
        let c = &mut self.commitments[i];
        s.by_member(Some(&c.accepting_agency))?;
        let r = &mut c.repairs[j];
        if r.decision.is_some() {
            return Err(format!("decides {}, already decided", b.application));
        }
        r.decision = Some(DecisionView {
            at: s.at(b.date),
            approved: b.approved,
            reason: b.reason.clone(),
        });
        if b.approved {
            let CommitmentStatus::Breached(sev) = c.status else {
                return Err(format!(
                    "repairs a commitment whose status is {:?}",
                    c.status
                ));
            };
            c.status = CommitmentStatus::Repaired(sev);
            self.profile.on_repaired(c.kind, sev);
        }
        Ok(())
    }
}

/// One line of a grade's explanation: a record, the rule it met, and its points.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// None for the base score.
    pub record: Option<RecordId>,
    pub rule: String,
    pub points: i64,
    pub detail: String,
}

/// A grade with everything it was derived from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GradeReport {
    pub grade: Grade,
    /// The score before caps.
    pub score: i64,
    pub rules_version: u32,
    pub as_of: Date,
    pub reasons: Vec<Reason>,
    /// Caps that held the grade down, each with its record.
    pub caps: Vec<Reason>,
}

fn in_window(dated: Date, day: Date, w: &Weight) -> bool {
    dated <= day && day < dated.plus_days(w.window_days)
}

fn percent(points: i64, pct: u32) -> i64 {
    points * pct as i64 / 100
}

/// Grades a verified history as of `day` under `rules`: a pure function of the
/// three. Records dated after `day` do not count (an outcome determined later, a
/// repair decided later, a listing effective later). See docs/credit.md.
pub fn grade(h: &CreditHistory, rules: &Grading, day: Date) -> GradeReport {
    let mut reasons = vec![Reason {
        record: None,
        rule: "base".into(),
        points: rules.base as i64,
        detail: "the score of a record with nothing in any window".into(),
    }];
    let mut caps = Vec::new();
    let mut fulfilled_total = 0i64;
    for c in &h.commitments {
        let Some(o) = &c.outcome else { continue };
        match o.verdict {
            Verdict::NotVerifiable => {}
            Verdict::Fulfilled => {
                if !in_window(o.at.date, day, &rules.fulfilled) {
                    continue;
                }
                let room = (rules.fulfilled_cap as i64 - fulfilled_total).max(0);
                let points = (rules.fulfilled.points as i64).min(room);
                fulfilled_total += points;
                reasons.push(Reason {
                    record: Some(o.at.id),
                    rule: "fulfilled".into(),
                    points,
                    detail: if points < rules.fulfilled.points as i64 {
                        format!(
                            "commitment {} kept (fulfilled points capped at {})",
                            c.at.id, rules.fulfilled_cap
                        )
                    } else {
                        format!("commitment {} kept", c.at.id)
                    },
                });
            }
            Verdict::Breached(sev) => {
                let (rule, w) = match sev {
                    Severity::Minor => ("breach_minor", &rules.breach_minor),
                    Severity::General => ("breach_general", &rules.breach_general),
                    Severity::Serious => ("breach_serious", &rules.breach_serious),
                };
                if !in_window(o.at.date, day, w) {
                    continue;
                }
                let domain_pct = rules.domain_percent(&c.domain);
                let mut points = percent(w.points as i64, domain_pct);
                let mut detail = format!(
                    "commitment {} breached ({} domain, {domain_pct} %)",
                    c.at.id, c.domain
                );
                let repaired = c.repaired().filter(|d| d.at.date <= day);
                if let Some(d) = repaired {
                    points = percent(points, rules.repaired_percent);
                    detail.push_str(&format!(
                        "; repaired by {} on {} ({} % kept)",
                        d.at.id, d.at.date, rules.repaired_percent
                    ));
                }
                reasons.push(Reason {
                    record: Some(o.at.id),
                    rule: rule.into(),
                    points,
                    detail,
                });
                if sev == Severity::Serious && repaired.is_none() {
                    caps.push(Reason {
                        record: Some(o.at.id),
                        rule: "serious_breach_cap".into(),
                        points: 0,
                        detail: format!(
                            "unrepaired serious breach until {}: grade at best {}",
                            o.at.date.plus_days(w.window_days),
                            rules.serious_breach_cap
                        ),
                    });
                }
            }
        }
    }
    for l in h.listed_on(ListKind::Reward, day) {
        reasons.push(Reason {
            record: Some(l.added.id),
            rule: "reward_list".into(),
            points: rules.reward_list_points as i64,
            detail: format!("on the reward list ({}) since {}", l.domain, l.added.date),
        });
    }
    for l in h.listed_on(ListKind::SeriousDishonesty, day) {
        caps.push(Reason {
            record: Some(l.added.id),
            rule: "serious_list_cap".into(),
            points: 0,
            detail: format!(
                "on the serious-dishonesty list ({}) since {}, until {} unless removed: grade at best {}",
                l.domain,
                l.added.date,
                l.until,
                rules.serious_list_cap
            ),
        });
    }
    let score: i64 = reasons.iter().map(|r| r.points).sum();
    let mut g = rules.grade_of(score);
    for c in &caps {
        let cap = if c.rule == "serious_list_cap" {
            rules.serious_list_cap
        } else {
            rules.serious_breach_cap
        };
        g = g.max(cap);
    }
    GradeReport {
        grade: g,
        score,
        rules_version: rules.version,
        as_of: day,
        reasons,
        caps,
    }
}

/// The rules in words, in the order [`grade`] applies them.
pub fn explain(r: &Grading) -> Vec<String> {
    let w = |w: &Weight| {
        format!(
            "{:+} points for {} days from its determining date",
            w.points, w.window_days
        )
    };
    let domains: Vec<String> = r
        .domain_percent
        .iter()
        .map(|d| format!("{} {} %", d.domain, d.percent))
        .collect();
    vec![
        format!("rules version {}", r.version),
        format!("every enterprise starts from {} points", r.base),
        format!(
            "a fulfilled commitment: {}, at most {} points together",
            w(&r.fulfilled),
            r.fulfilled_cap
        ),
        format!("a minor breach: {}", w(&r.breach_minor)),
        format!("a general breach: {}", w(&r.breach_general)),
        format!("a serious breach: {}", w(&r.breach_serious)),
        format!(
            "breach points weigh by domain ({}; others 100 %), rounded toward zero",
            if domains.is_empty() {
                "none listed".into()
            } else {
                domains.join(", ")
            }
        ),
        format!(
            "a repaired breach keeps {} % of its points from the repair decision's date",
            r.repaired_percent
        ),
        format!(
            "the reward list: {:+} points while in force ({} days from its effective date for listings recorded under these rules, unless removed)",
            r.reward_list_points, r.reward_list_days
        ),
        format!(
            "grade A from {} points, B from {}, C from {}, D below",
            r.a_min, r.b_min, r.c_min
        ),
        format!(
            "the serious-dishonesty list caps the grade at {} while in force ({} days from its effective date for listings recorded under these rules, unless removed)",
            r.serious_list_cap, r.serious_list_days
        ),
        format!(
            "an unrepaired serious breach in its window caps the grade at {}",
            r.serious_breach_cap
        ),
        "records dated after the grade's date do not count".into(),
    ]
}

/// A verified answer: the enterprise's history as of a finalized header, its grade
/// under the rules of that header's roster as of the header's date.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedCredit {
    pub height: u64,
    pub header_hash: Hash32,
    /// sha256 of the canonical credit state the header's index commits to.
    pub state_hash: Hash32,
    pub history: CreditHistory,
    pub grade: GradeReport,
}

impl VerifiedCredit {
    fn within(&self, day: Date) -> Result<(), CreditError> {
        if day > self.grade.as_of {
            return Err(CreditError::BeyondHeader {
                day,
                as_of: self.grade.as_of,
            });
        }
        Ok(())
    }

    /// "No serious breach was determined between `from` and `to`", for days up to the
    /// header's date: proven by the complete history, or refuted by a named record.
    /// What it proves is what was recorded by that header: an outcome recorded later
    /// may still carry an earlier date.
    pub fn no_serious_breach_between(&self, from: Date, to: Date) -> Result<(), CreditError> {
        self.within(to)?;
        self.history.no_serious_breach_between(from, to)
    }

    /// "Not on the serious-dishonesty list on `day`", for a day up to the header's date.
    pub fn not_seriously_listed_on(&self, day: Date) -> Result<(), CreditError> {
        self.within(day)?;
        self.history.not_seriously_listed_on(day)
    }
}

impl LightClient {
    /// Checks an answer completely: the checkpoint's finality; the credit state's place
    /// in the header's credit index (or, for an unregistered USCC, its absence, which
    /// is then the error [`CreditError::NotRegistered`]); every record's bytes, fields,
    /// signature and inclusion; that the records are exactly those the state counts and
    /// chains, in order; that replaying them derives the proven profile; then grades them.
    pub fn verify_credit(
        &self,
        uscc: &Uscc,
        p: &CreditProof,
    ) -> Result<VerifiedCredit, CreditError> {
        if p.records.len() > CREDIT_RECORDS_MAX {
            return Err(CreditError::Oversize(format!(
                "{} records, bound {CREDIT_RECORDS_MAX}",
                p.records.len()
            )));
        }
        if &p.uscc != uscc {
            return Err(CreditError::WrongEnterprise {
                asked: uscc.clone(),
                got: p.uscc.clone(),
            });
        }
        self.check_checkpoint(&p.checkpoint)?;
        let header = &p.checkpoint.header;
        if let Some(t) = self.trusted()
            && t.header.height > header.height
        {
            return Err(CreditError::Stale {
                answer: header.height,
                trusted: t.header.height,
            });
        }
        let key = CreditState::index_key(uscc);
        let Some(bytes) = &p.state else {
            p.index_proof
                .verify_absent(&header.credit_root, &key)
                .map_err(|e| CreditError::NotAbsent {
                    uscc: uscc.clone(),
                    height: header.height,
                    reason: e.to_string(),
                })?;
            if !p.records.is_empty() {
                return Err(CreditError::Count {
                    given: p.records.len(),
                    proven: 0,
                });
            }
            return Err(CreditError::NotRegistered {
                uscc: uscc.clone(),
                height: header.height,
            });
        };
        let state: CreditState = canonical::decode(&bytes.0, CREDIT_STATE_BYTES_MAX)
            .map_err(|e| CreditError::StateBytes(e.to_string()))?;
        if &state.uscc != uscc {
            return Err(CreditError::WrongEnterprise {
                asked: uscc.clone(),
                got: state.uscc,
            });
        }
        let state_hash = canonical::sha256(&bytes.0);
        p.index_proof
            .verify(&header.credit_root, &key, &state_hash)
            .map_err(|e| CreditError::NotInIndex {
                height: header.height,
                reason: e.to_string(),
            })?;
        if p.records.len() != state.records as usize {
            return Err(CreditError::Count {
                given: p.records.len(),
                proven: state.records,
            });
        }
        let records = self.verify_credit_records(&p.records, header)?;
        let mut chain = Hash32([0; 32]);
        for (index, rec) in &records {
            chain = next_credit_chain(&chain, *index, &rec.id());
        }
        if chain != state.chain {
            return Err(CreditError::Chain);
        }
        for (index, rec) in &records {
            if self.is_member_key(&rec.record().envelope.signer, *index) {
                self.member_authority(rec, *index)?;
            }
        }
        let context = |k: &PublicKey, index: u64| {
            let grading = &self.roster_of_index(index).policy.grading;
            RecordContext {
                member: self.member_at_index(k, index).map(|m| m.id.clone()),
                reward_list_days: grading.reward_list_days,
                serious_list_days: grading.serious_list_days,
            }
        };
        let history = CreditHistory::fold(uscc, &records, &context)?;
        if history.profile != state.profile {
            return Err(CreditError::Profile {
                derived: Box::new(history.profile.clone()),
                proven: Box::new(state.profile),
            });
        }
        let rules = &self.roster_at(header.height).policy.grading;
        let grade = grade(&history, rules, Date::of_ms_beijing(header.time_ms));
        Ok(VerifiedCredit {
            height: header.height,
            header_hash: header.hash(),
            state_hash,
            history,
            grade,
        })
    }

    /// Each entry proven under `header`, in strictly increasing ledger order, with one
    /// batch verification of all signatures.
    fn verify_credit_records(
        &self,
        entries: &[LedgerEntry],
        header: &Header,
    ) -> Result<Vec<(u64, EncodedRecord)>, CreditError> {
        let mut out: Vec<(u64, EncodedRecord)> = Vec::with_capacity(entries.len());
        for e in entries {
            if let Some((previous, _)) = out.last()
                && e.index <= *previous
            {
                return Err(CreditError::Order {
                    index: e.index,
                    previous: *previous,
                });
            }
            out.push((e.index, self.verify_entry_unsigned(e, header)?));
        }
        crate::proof::verify_signatures(out.iter().map(|(_, r)| r))?;
        Ok(out)
    }

    /// Checks a credit report as a fresh client holding only `genesis`.
    pub fn verify_credit_report(
        genesis: xinlian_genesis::Genesis,
        r: &CreditReport,
    ) -> Result<VerifiedCredit, CreditError> {
        if r.format != CREDIT_REPORT_FORMAT {
            return Err(CreditError::Format(r.format.clone()));
        }
        let client =
            LightClient::with_changes(genesis, "credit report", r.chain, &r.roster_changes)?;
        client.verify_credit(&r.proof.uscc, &r.proof)
    }
}

#[cfg(test)]
mod tests {
    //! The rule table: each rule's effect, windows at their edges, repairs, listings,
    //! caps and rounding, on histories built by hand (no records needed to grade).
    use super::*;
    use xinlian_genesis::grading::DomainWeight;

    const D: Date = Date(20_000);

    fn at(n: u8, date: Date) -> At {
        At {
            id: RecordId([n; 32]),
            ledger_index: n as u64,
            date,
        }
    }

    fn history() -> CreditHistory {
        CreditHistory {
            uscc: Uscc("91310000MA1K000010".into()),
            name: "Firm".into(),
            registered: at(0, Date(0)),
            records: Vec::new(),
            commitments: Vec::new(),
            listings: Vec::new(),
            profile: Profile::default(),
        }
    }

    /// Adds a decided commitment in `domain`, its outcome dated `date`.
    fn decided(h: &mut CreditHistory, n: u8, verdict: Verdict, date: Date, domain: &str) {
        h.commitments.push(CommitmentView {
            at: at(n, date.plus_days(0)),
            kind: CommitmentKind::VoluntaryPublic,
            matter: "m".into(),
            accepting_agency: "market".into(),
            domain: domain.into(),
            deadline: date,
            status: match verdict {
                Verdict::Fulfilled => CommitmentStatus::Fulfilled,
                Verdict::NotVerifiable => CommitmentStatus::NotVerifiable,
                Verdict::Breached(s) => CommitmentStatus::Breached(s),
            },
            outcome: Some(OutcomeView {
                at: at(n + 100, date),
                verdict,
                document: "doc".into(),
            }),
            repairs: Vec::new(),
        });
    }

    fn repaired_on(h: &mut CreditHistory, date: Date) {
        let c = h.commitments.last_mut().unwrap();
        c.repairs.push(RepairView {
            application: at(200, date),
            decision: Some(DecisionView {
                at: at(201, date),
                approved: true,
                reason: "ok".into(),
            }),
        });
    }

    fn listed(h: &mut CreditHistory, list: ListKind, added: Date, removed: Option<Date>) {
        let r = Grading::default();
        let days = match list {
            ListKind::Reward => r.reward_list_days,
            ListKind::SeriousDishonesty => r.serious_list_days,
        };
        h.listings.push(Listing {
            until: added.plus_days(days),
            list,
            domain: "market".into(),
            added: at(150, added),
            basis: Vec::new(),
            reason: "r".into(),
            removed: removed.map(|d| (at(151, d), "lifted".into())),
        });
    }

    fn score(h: &CreditHistory, day: Date) -> (Grade, i64) {
        let g = grade(h, &Grading::default(), day);
        (g.grade, g.score)
    }

    fn before(d: Date, days: i32) -> Date {
        Date(d.0 - days)
    }

    #[test]
    fn an_empty_record_is_the_base_score() {
        let g = grade(&history(), &Grading::default(), D);
        assert_eq!((g.grade, g.score, g.rules_version), (Grade::B, 80, 1));
        assert_eq!(g.reasons.len(), 1);
        assert!(g.caps.is_empty());
    }

    #[test]
    fn kept_commitments_add_points_up_to_their_cap() {
        let mut h = history();
        for n in 0..3 {
            decided(&mut h, n, Verdict::Fulfilled, D, "market");
        }
        // 89: one point short of A.
        assert_eq!(score(&h, D), (Grade::B, 89));
        for n in 3..7 {
            decided(&mut h, n, Verdict::Fulfilled, D, "market");
        }
        // 7 × 3 = 21, capped at 15; the sixth gets 0, the fifth the rest of the room.
        let g = grade(&h, &Grading::default(), D);
        assert_eq!((g.grade, g.score), (Grade::A, 95));
        let pts: Vec<i64> = g.reasons.iter().skip(1).map(|r| r.points).collect();
        assert_eq!(pts, vec![3, 3, 3, 3, 3, 0, 0]);
        assert!(g.reasons[6].detail.contains("capped"));
        // Not-verifiable outcomes count nothing.
        let mut h = history();
        decided(&mut h, 0, Verdict::NotVerifiable, D, "market");
        assert_eq!(score(&h, D), (Grade::B, 80));
    }

    #[test]
    fn windows_count_from_the_determining_date_to_the_day_before_it_ends() {
        let r = Grading::default();
        for (verdict, w) in [
            (Verdict::Fulfilled, &r.fulfilled),
            (Verdict::Breached(Severity::Minor), &r.breach_minor),
            (Verdict::Breached(Severity::General), &r.breach_general),
            (Verdict::Breached(Severity::Serious), &r.breach_serious),
        ] {
            let mut h = history();
            decided(&mut h, 0, verdict, D, "market");
            let counted = |day: Date| grade(&h, &r, day).score != 80;
            assert!(!counted(before(D, 1)), "{verdict:?}: not before its date");
            assert!(counted(D), "{verdict:?}: on its date");
            assert!(
                counted(D.plus_days(w.window_days - 1)),
                "{verdict:?}: last day"
            );
            assert!(
                !counted(D.plus_days(w.window_days)),
                "{verdict:?}: window over"
            );
        }
    }

    #[test]
    fn breaches_weigh_by_severity_and_domain_rounding_toward_zero() {
        let mut h = history();
        decided(&mut h, 0, Verdict::Breached(Severity::Minor), D, "market");
        assert_eq!(score(&h, D), (Grade::B, 75));
        let mut h = history();
        decided(&mut h, 0, Verdict::Breached(Severity::General), D, "market");
        assert_eq!(score(&h, D), (Grade::C, 60));
        // Food weighs 150 %: -30.
        let mut h = history();
        decided(&mut h, 0, Verdict::Breached(Severity::General), D, "food");
        assert_eq!(score(&h, D), (Grade::C, 50));
        // -5 × 150 % = -7.5 → -7.
        let mut h = history();
        decided(&mut h, 0, Verdict::Breached(Severity::Minor), D, "food");
        assert_eq!(score(&h, D).1, 73);
        // A serious breach: -50, and an unrepaired one caps at C besides.
        let mut h = history();
        decided(&mut h, 0, Verdict::Breached(Severity::Serious), D, "market");
        let g = grade(&h, &Grading::default(), D);
        assert_eq!((g.grade, g.score), (Grade::D, 30));
        assert_eq!(g.caps[0].rule, "serious_breach_cap");
    }

    #[test]
    fn the_serious_breach_cap_holds_whatever_the_score() {
        let rules = Grading {
            breach_serious: Weight {
                points: -1,
                window_days: 1095,
            },
            ..Grading::default()
        };
        let mut h = history();
        for n in 1..6 {
            decided(&mut h, n, Verdict::Fulfilled, D, "market");
        }
        decided(&mut h, 0, Verdict::Breached(Severity::Serious), D, "market");
        let g = grade(&h, &rules, D);
        assert_eq!(
            (g.score, g.grade),
            (94, Grade::C),
            "A by score, capped at C"
        );
        repaired_on(&mut h, D.plus_days(400));
        assert_eq!(grade(&h, &rules, D.plus_days(399)).grade, Grade::C);
        assert_eq!(
            grade(&h, &rules, D.plus_days(400)).grade,
            Grade::A,
            "repair lifts the cap"
        );
    }

    #[test]
    fn a_repair_keeps_its_share_from_the_decision_date() {
        let mut h = history();
        decided(&mut h, 0, Verdict::Breached(Severity::General), D, "market");
        repaired_on(&mut h, D.plus_days(100));
        assert_eq!(score(&h, D.plus_days(99)), (Grade::C, 60));
        // -20 × 25 % = -5.
        assert_eq!(score(&h, D.plus_days(100)), (Grade::B, 75));
        // -30 (food) × 25 % = -7.5 → -7.
        let mut h = history();
        decided(&mut h, 0, Verdict::Breached(Severity::General), D, "food");
        repaired_on(&mut h, D.plus_days(100));
        assert_eq!(score(&h, D.plus_days(100)).1, 73);
        // The window still ends: a repaired breach is then gone entirely.
        assert_eq!(score(&h, D.plus_days(365)).1, 80);
    }

    #[test]
    fn listings_take_effect_on_their_date_and_end_by_removal_or_lapse() {
        let rules = Grading::default();
        let mut h = history();
        listed(&mut h, ListKind::SeriousDishonesty, D, None);
        assert_eq!(score(&h, before(D, 1)).0, Grade::B);
        let g = grade(&h, &rules, D);
        assert_eq!(
            (g.grade, g.score),
            (Grade::D, 80),
            "the score is untouched, the grade capped"
        );
        assert_eq!(g.caps[0].rule, "serious_list_cap");
        let last = D.plus_days(rules.serious_list_days - 1);
        assert_eq!(score(&h, last).0, Grade::D);
        assert_eq!(score(&h, last.plus_days(1)).0, Grade::B, "lapsed");
        // Removed: in force until the day before the removal's date.
        let mut h = history();
        listed(
            &mut h,
            ListKind::SeriousDishonesty,
            D,
            Some(D.plus_days(30)),
        );
        assert_eq!(score(&h, D.plus_days(29)).0, Grade::D);
        assert_eq!(score(&h, D.plus_days(30)).0, Grade::B);
        assert_eq!(
            h.listed_on(ListKind::SeriousDishonesty, D.plus_days(29))
                .len(),
            1
        );
        // The reward list adds its points while in force.
        let mut h = history();
        listed(&mut h, ListKind::Reward, D, None);
        assert_eq!(score(&h, D), (Grade::A, 90));
        assert_eq!(
            score(&h, D.plus_days(rules.reward_list_days)),
            (Grade::B, 80)
        );
    }

    #[test]
    fn records_dated_after_the_grade_date_do_not_count() {
        let mut h = history();
        decided(
            &mut h,
            0,
            Verdict::Breached(Severity::General),
            D.plus_days(10),
            "market",
        );
        listed(&mut h, ListKind::SeriousDishonesty, D.plus_days(10), None);
        assert_eq!(score(&h, D), (Grade::B, 80));
        assert_eq!(score(&h, D.plus_days(10)), (Grade::D, 60));
    }

    #[test]
    fn domain_weights_and_thresholds_come_from_the_rules() {
        let rules = Grading {
            a_min: 95,
            domain_percent: vec![DomainWeight {
                domain: "market".into(),
                percent: 0,
            }],
            ..Grading::default()
        };
        let mut h = history();
        decided(&mut h, 0, Verdict::Breached(Severity::General), D, "market");
        decided(&mut h, 1, Verdict::Breached(Severity::General), D, "food");
        let g = grade(&h, &rules, D);
        assert_eq!(
            (g.grade, g.score),
            (Grade::C, 80 - 20),
            "market breach weighs 0 %"
        );
        assert!(g.reasons[1].detail.contains("0 %"));
        for n in 2..7 {
            decided(&mut h, n, Verdict::Fulfilled, D, "market");
        }
        assert_eq!(grade(&h, &rules, D).score, 75);
        assert_eq!(explain(&rules).len(), 13);
    }
}
