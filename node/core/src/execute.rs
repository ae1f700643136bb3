//! Validation against state and the state transition of every record kind: a pure
//! function of (state, consortium, block context, record). No clock, no I/O: the block
//! time is data, and state is read through [`Overlay`].

use std::collections::HashMap;

use xinlian_client::checks::StatelessError;
use xinlian_client::ids::Uscc;
use xinlian_client::record::*;
use xinlian_client::state::{self as st, key};
use xinlian_client::when::Date;
use xinlian_genesis::{Genesis, Hash32, Member, Policy, PublicKey, Role, Roster, ValidatorSet};

use crate::overlay::{Overlay, StateError};

/// The genesis and the roster in force at one height, with the look-ups execution
/// needs, built once per roster.
#[derive(Debug, PartialEq, Eq)]
pub struct Consortium {
    pub genesis: Genesis,
    pub chain: Hash32,
    pub roster: Roster,
    pub roster_hash: Hash32,
    /// The height from which `roster` is in force.
    pub since: u64,
    pub validators: ValidatorSet,
    by_signing_key: HashMap<PublicKey, usize>,
}

impl Consortium {
    /// The consortium at height 1.
    pub fn new(genesis: Genesis) -> Self {
        let roster = genesis.roster();
        Consortium::with_roster(genesis, roster, 1)
    }

    pub fn with_roster(genesis: Genesis, roster: Roster, since: u64) -> Self {
        debug_assert!(roster.problems().is_empty(), "rosters in force are valid");
        let by_signing_key = roster
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.signing_key, i))
            .collect();
        Consortium {
            chain: genesis.hash(),
            validators: roster.validator_set(),
            roster_hash: roster.hash(),
            by_signing_key,
            roster,
            since,
            genesis,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.roster.policy
    }

    pub fn member_by_signing_key(&self, k: &PublicKey) -> Option<&Member> {
        self.by_signing_key.get(k).map(|&i| &self.roster.members[i])
    }

    fn is_member_key(&self, k: &PublicKey) -> bool {
        self.by_signing_key.contains_key(k) || self.roster.member_by_node_key(k).is_some()
    }
}

/// Where a record is executed: the block it would be part of.
#[derive(Clone, Copy, Debug)]
pub struct BlockContext {
    pub height: u64,
    pub time_ms: i64,
}

impl BlockContext {
    fn date(&self) -> Date {
        Date::of_ms_beijing(self.time_ms)
    }
}

/// Why a record was refused. Every variant leaves state untouched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    #[error(transparent)]
    Stateless(#[from] StatelessError),
    #[error("replay: record {0} is already on the ledger")]
    Duplicate(RecordId),
    #[error("signer {0} is neither a consortium member's key nor a registered enterprise key")]
    UnknownSigner(PublicKey),
    #[error("signer key {key} of {uscc} was revoked at height {height}")]
    KeyRevoked {
        key: PublicKey,
        uscc: Uscc,
        height: u64,
    },
    #[error("{kind} not authorised: {reason}")]
    Unauthorised { kind: &'static str, reason: String },
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{what} {id} already exists")]
    AlreadyExists { what: &'static str, id: String },
    #[error("{what}: {reason}")]
    WrongState { what: &'static str, reason: String },
    #[error("{holder} holds {held} {uom} of batch {batch}, cannot move {wanted}")]
    Insufficient {
        batch: String,
        holder: Uscc,
        held: u64,
        wanted: u64,
        uom: String,
    },
    #[error("batch {batch} is counted in {expected}, not {got}")]
    UnitMismatch {
        batch: String,
        expected: String,
        got: String,
    },
    #[error("{subject} may not use the notification-commitment route: {reason}")]
    NotEligible { subject: Uscc, reason: String },
    #[error(
        "repair of {outcome} may be applied for from {earliest} ({tier} breach, {min_days} days after {determined})"
    )]
    TooEarly {
        outcome: RecordId,
        earliest: Date,
        tier: &'static str,
        min_days: u32,
        determined: Date,
    },
    #[error("{what} is dated {date}, after the block date {block_date}")]
    FutureDate {
        what: &'static str,
        date: Date,
        block_date: Date,
    },
}

impl Rejection {
    /// A stable machine code for APIs and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Stateless(StatelessError::WrongChain { .. }) => "wrong_chain",
            Rejection::Stateless(StatelessError::Signature(_)) => "bad_signature",
            Rejection::Stateless(StatelessError::Identifier { .. }) => "invalid_identifier",
            Rejection::Stateless(_) => "invalid_field",
            Rejection::Duplicate(_) => "duplicate",
            Rejection::UnknownSigner(_) => "unknown_signer",
            Rejection::KeyRevoked { .. } => "key_revoked",
            Rejection::Unauthorised { .. } => "unauthorised",
            Rejection::NotFound { .. } => "not_found",
            Rejection::AlreadyExists { .. } => "already_exists",
            Rejection::WrongState { .. } => "wrong_state",
            Rejection::Insufficient { .. } => "insufficient_quantity",
            Rejection::UnitMismatch { .. } => "unit_mismatch",
            Rejection::NotEligible { .. } => "not_eligible",
            Rejection::TooEarly { .. } => "too_early",
            Rejection::FutureDate { .. } => "future_date",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error(transparent)]
    State(#[from] StateError),
}

pub(crate) type Ex<T = ()> = Result<T, ExecError>;

pub(crate) fn reject<T>(r: Rejection) -> Ex<T> {
    Err(ExecError::Rejected(r))
}

pub(crate) fn unauthorised<T>(kind: Kind, reason: impl Into<String>) -> Ex<T> {
    reject(Rejection::Unauthorised {
        kind: kind.name(),
        reason: reason.into(),
    })
}

pub(crate) enum Signer<'c> {
    Member(&'c Member),
    Enterprise(Uscc),
}

fn resolve_signer<'c>(s: &Overlay, c: &'c Consortium, signer: &PublicKey) -> Ex<Signer<'c>> {
    if let Some(m) = c.member_by_signing_key(signer) {
        return Ok(Signer::Member(m));
    }
    match s.get::<st::KeyBinding>(&key::key_binding(signer))? {
        None => reject(Rejection::UnknownSigner(*signer)),
        Some(kb) => match kb.revoked_at {
            Some(height) => reject(Rejection::KeyRevoked {
                key: *signer,
                uscc: kb.uscc,
                height,
            }),
            None => Ok(Signer::Enterprise(kb.uscc)),
        },
    }
}

fn enterprise_signer(kind: Kind, signer: &Signer, expected: Option<&Uscc>) -> Ex<Uscc> {
    match signer {
        Signer::Enterprise(u) if expected.is_none_or(|e| e == u) => Ok(u.clone()),
        Signer::Enterprise(u) => unauthorised(
            kind,
            format!(
                "signed by {u}, but only {} may sign it",
                expected.expect("some")
            ),
        ),
        Signer::Member(m) => unauthorised(
            kind,
            format!(
                "must be signed by an enterprise key, not by member '{}'",
                m.id
            ),
        ),
    }
}

pub(crate) fn member_signer<'c>(kind: Kind, signer: &Signer<'c>) -> Ex<&'c Member> {
    match signer {
        Signer::Member(m) => Ok(m),
        Signer::Enterprise(u) => unauthorised(
            kind,
            format!("must be signed by an agency, not by enterprise {u}"),
        ),
    }
}

pub(crate) fn need<T>(v: Option<T>, what: &'static str, id: impl ToString) -> Ex<T> {
    v.ok_or_else(|| {
        ExecError::Rejected(Rejection::NotFound {
            what,
            id: id.to_string(),
        })
    })
}

fn not_dated_after(what: &'static str, date: Date, ctx: &BlockContext) -> Ex {
    // One day of slack: the agency's calendar day may run ahead of Beijing time.
    if date > ctx.date().plus_days(1) {
        return reject(Rejection::FutureDate {
            what,
            date,
            block_date: ctx.date(),
        });
    }
    Ok(())
}

fn entity(s: &Overlay, u: &Uscc) -> Ex<st::Entity> {
    need(s.get(&key::entity(u))?, "enterprise", u)
}

fn profile(s: &Overlay, u: &Uscc) -> Ex<st::Profile> {
    Ok(s.get(&key::profile(u))?.unwrap_or_default())
}

fn tier_name(sev: Severity) -> &'static str {
    match sev {
        Severity::Minor => "minor",
        Severity::General => "general",
        Severity::Serious => "serious",
    }
}

fn count_status(p: &mut st::Profile, status: st::CommitmentStatus, delta: i32) {
    let slot = match status {
        st::CommitmentStatus::Pending => &mut p.pending,
        st::CommitmentStatus::Fulfilled => &mut p.fulfilled,
        st::CommitmentStatus::NotVerifiable => &mut p.not_verifiable,
        st::CommitmentStatus::Breached(Severity::Minor) => &mut p.breached_minor,
        st::CommitmentStatus::Breached(Severity::General) => &mut p.breached_general,
        st::CommitmentStatus::Breached(Severity::Serious) => &mut p.breached_serious,
        st::CommitmentStatus::Repaired(_) => &mut p.repaired,
    };
    *slot = slot
        .checked_add_signed(delta)
        .expect("profile counts follow commitment states");
}

fn key_is_free(s: &Overlay, c: &Consortium, k: &PublicKey, kind: Kind) -> Ex {
    if c.is_member_key(k) {
        return unauthorised(kind, format!("key {k} belongs to a consortium member"));
    }
    if let Some(kb) = s.get::<st::KeyBinding>(&key::key_binding(k))? {
        return reject(Rejection::AlreadyExists {
            what: "key binding",
            id: format!("{k} (bound to {})", kb.uscc),
        });
    }
    Ok(())
}

fn append_event(s: &mut Overlay, b: &mut st::BatchState, id: RecordId) {
    s.put(key::batch_event(&b.batch, b.events), &id);
    b.events = b
        .events
        .checked_add(1)
        .expect("event count bounded by ledger size");
    b.last_event = id;
    b.event_chain = st::next_event_chain(&b.event_chain, &id);
}

fn batch(s: &Overlay, name: &str) -> Ex<st::BatchState> {
    need(s.get(&key::batch(name))?, "batch", name)
}

fn same_unit(b: &st::BatchState, q: &Quantity) -> Ex {
    if b.uom != q.uom {
        return reject(Rejection::UnitMismatch {
            batch: b.batch.clone(),
            expected: b.uom.clone(),
            got: q.uom.clone(),
        });
    }
    Ok(())
}

fn take(s: &mut Overlay, b: &st::BatchState, holder: &Uscc, q: &Quantity) -> Ex {
    same_unit(b, q)?;
    let k = key::holding(&b.batch, holder);
    let held: u64 = s.get(&k)?.unwrap_or(0);
    if held < q.amount {
        return reject(Rejection::Insufficient {
            batch: b.batch.clone(),
            holder: holder.clone(),
            held,
            wanted: q.amount,
            uom: b.uom.clone(),
        });
    }
    if held == q.amount {
        s.delete(k)
    } else {
        s.put(k, &(held - q.amount))
    }
    Ok(())
}

fn give(s: &mut Overlay, batch: &str, holder: &Uscc, amount: u64) -> Ex {
    let k = key::holding(batch, holder);
    let held: u64 = s.get(&k)?.unwrap_or(0);
    s.put(
        k,
        &held
            .checked_add(amount)
            .expect("holdings never exceed u64: amounts are bounded by creation"),
    );
    Ok(())
}

/// Validates `rec` against state and applies it, atomically. `ledger_index` is the
/// position the record takes in the ledger-wide tree.
pub fn execute_record(
    s: &mut Overlay,
    c: &Consortium,
    ctx: &BlockContext,
    rec: &EncodedRecord,
    ledger_index: u64,
) -> Ex {
    s.atomically(|s| apply(s, c, ctx, rec, ledger_index))
}

fn apply(
    s: &mut Overlay,
    c: &Consortium,
    ctx: &BlockContext,
    rec: &EncodedRecord,
    ledger_index: u64,
) -> Ex {
    let id = rec.id();
    if s.get_raw(&key::seen(&id))?.is_some() {
        return reject(Rejection::Duplicate(id));
    }
    s.put(key::seen(&id), &(ctx.height, ledger_index));
    let kind = rec.kind();
    let signer = resolve_signer(s, c, &rec.record().envelope.signer)?;
    let concerns: Vec<Uscc> = match &rec.record().envelope.body {
        Body::RegisterEntity(b) => {
            let m = member_signer(kind, &signer)?;
            require_role(kind, m, Role::Registrar)?;
            if s.get_raw(&key::entity(&b.uscc))?.is_some() {
                return reject(Rejection::AlreadyExists {
                    what: "enterprise",
                    id: b.uscc.to_string(),
                });
            }
            key_is_free(s, c, &b.key, kind)?;
            s.put(
                key::entity(&b.uscc),
                &st::Entity {
                    uscc: b.uscc.clone(),
                    name: b.name.clone(),
                    key: Some(b.key),
                    registered_by: m.id.clone(),
                    registered_at: ctx.height,
                    check_override: b.check_override.clone(),
                },
            );
            s.put(
                key::key_binding(&b.key),
                &st::KeyBinding {
                    uscc: b.uscc.clone(),
                    bound_at: ctx.height,
                    bound_by: id,
                    revoked_at: None,
                },
            );
            s.put(key::profile(&b.uscc), &st::Profile::default());
            vec![b.uscc.clone()]
        }
        Body::RotateEntityKey(b) => {
            let mut e = entity(s, &b.uscc)?;
            authorise_registrar_or_self(kind, &signer, &b.uscc)?;
            key_is_free(s, c, &b.new_key, kind)?;
            if let Some(old) = e.key {
                revoke(s, &old, ctx.height)?;
            }
            e.key = Some(b.new_key);
            s.put(
                key::key_binding(&b.new_key),
                &st::KeyBinding {
                    uscc: b.uscc.clone(),
                    bound_at: ctx.height,
                    bound_by: id,
                    revoked_at: None,
                },
            );
            s.put(key::entity(&b.uscc), &e);
            vec![b.uscc.clone()]
        }
        Body::RevokeEntityKey(b) => {
            let mut e = entity(s, &b.uscc)?;
            authorise_registrar_or_self(kind, &signer, &b.uscc)?;
            let Some(old) = e.key else {
                return reject(Rejection::WrongState {
                    what: "enterprise key",
                    reason: format!("{} has no key to revoke", b.uscc),
                });
            };
            revoke(s, &old, ctx.height)?;
            e.key = None;
            s.put(key::entity(&b.uscc), &e);
            vec![b.uscc.clone()]
        }
        Body::Commitment(b) => {
            let subject = enterprise_signer(kind, &signer, Some(&b.subject))?;
            let agency = need(
                c.roster.member(&b.accepting_agency),
                "accepting agency",
                &b.accepting_agency,
            )?;
            require_role(kind, agency, Role::CreditAuthority(b.domain.clone()))?;
            not_dated_after("commitment", b.date, ctx)?;
            let mut p = profile(s, &subject)?;
            if b.kind == CommitmentKind::ApprovalSubstitute {
                let reason = if p.on_serious_dishonesty_list {
                    Some("it is on the serious-dishonesty list")
                } else if p.breached_serious > 0 {
                    Some("it has an unrepaired serious breach")
                } else if p.breached_notification > 0 {
                    Some("it has an unrepaired false notification-commitment")
                } else {
                    None
                };
                if let Some(r) = reason {
                    return reject(Rejection::NotEligible {
                        subject,
                        reason: r.into(),
                    });
                }
            }
            p.commitments += 1;
            count_status(&mut p, st::CommitmentStatus::Pending, 1);
            s.put(key::profile(&subject), &p);
            s.put(
                key::commitment(&id),
                &st::CommitmentState {
                    id,
                    subject: subject.clone(),
                    kind: b.kind,
                    accepting_agency: b.accepting_agency.clone(),
                    domain: b.domain.clone(),
                    deadline: b.deadline,
                    status: st::CommitmentStatus::Pending,
                    outcome: None,
                    outcome_date: None,
                    open_repair: None,
                    repaired_by: None,
                },
            );
            vec![subject]
        }
        Body::Outcome(b) => {
            let mut cm = commitment(s, &b.commitment)?;
            accepting_agency_only(kind, &signer, &cm, "verifies this commitment")?;
            if cm.status != st::CommitmentStatus::Pending {
                return reject(Rejection::WrongState {
                    what: "commitment",
                    reason: format!(
                        "{} was already decided by outcome {}",
                        b.commitment,
                        cm.outcome.expect("decided has outcome")
                    ),
                });
            }
            not_dated_after("outcome", b.date, ctx)?;
            let status = match b.verdict {
                Verdict::Fulfilled => st::CommitmentStatus::Fulfilled,
                Verdict::NotVerifiable => st::CommitmentStatus::NotVerifiable,
                Verdict::Breached(sev) => st::CommitmentStatus::Breached(sev),
            };
            let mut p = profile(s, &cm.subject)?;
            count_status(&mut p, st::CommitmentStatus::Pending, -1);
            count_status(&mut p, status, 1);
            if matches!(status, st::CommitmentStatus::Breached(_))
                && cm.kind == CommitmentKind::ApprovalSubstitute
            {
                p.breached_notification += 1;
            }
            s.put(key::profile(&cm.subject), &p);
            cm.status = status;
            cm.outcome = Some(id);
            cm.outcome_date = Some(b.date);
            s.put(key::commitment(&b.commitment), &cm);
            s.put(key::outcome(&id), &b.commitment);
            vec![cm.subject]
        }
        Body::ListMeasure(b) => {
            let m = member_signer(kind, &signer)?;
            require_role(kind, m, Role::CreditAuthority(b.domain.clone()))?;
            entity(s, &b.subject)?;
            not_dated_after("list measure", b.date, ctx)?;
            let lk = key::list(b.list, &b.subject);
            let on_list = s.get_raw(&lk)?.is_some();
            let mut serious_basis = false;
            for r in &b.basis {
                let cid: RecordId = need(s.get(&key::outcome(r))?, "outcome", r)?;
                let cm: st::CommitmentState =
                    need(s.get(&key::commitment(&cid))?, "commitment", cid)?;
                if cm.subject != b.subject {
                    return reject(Rejection::WrongState {
                        what: "basis",
                        reason: format!("outcome {r} concerns {}, not {}", cm.subject, b.subject),
                    });
                }
                serious_basis |= cm.status == st::CommitmentStatus::Breached(Severity::Serious);
            }
            let mut p = profile(s, &b.subject)?;
            let flag = match b.list {
                ListKind::Reward => &mut p.on_reward_list,
                ListKind::SeriousDishonesty => &mut p.on_serious_dishonesty_list,
            };
            match b.action {
                ListAction::Add => {
                    if on_list {
                        return reject(Rejection::WrongState {
                            what: "list",
                            reason: format!("{} is already on the {:?} list", b.subject, b.list),
                        });
                    }
                    if b.list == ListKind::SeriousDishonesty && !serious_basis {
                        return reject(Rejection::WrongState {
                            what: "basis",
                            reason: "the serious-dishonesty list needs an unrepaired serious breach among the basis".into(),
                        });
                    }
                    *flag = true;
                    s.put(
                        lk,
                        &st::ListEntry {
                            list: b.list,
                            subject: b.subject.clone(),
                            domain: b.domain.clone(),
                            measure: id,
                            date: b.date,
                        },
                    );
                }
                ListAction::Remove => {
                    if !on_list {
                        return reject(Rejection::WrongState {
                            what: "list",
                            reason: format!("{} is not on the {:?} list", b.subject, b.list),
                        });
                    }
                    *flag = false;
                    s.delete(lk);
                }
            }
            s.put(key::profile(&b.subject), &p);
            vec![b.subject.clone()]
        }
        Body::RepairApplication(b) => {
            let cid: RecordId = need(s.get(&key::outcome(&b.outcome))?, "outcome", b.outcome)?;
            let mut cm: st::CommitmentState =
                need(s.get(&key::commitment(&cid))?, "commitment", cid)?;
            enterprise_signer(kind, &signer, Some(&cm.subject))?;
            let st::CommitmentStatus::Breached(sev) = cm.status else {
                return reject(Rejection::WrongState {
                    what: "commitment",
                    reason: format!("status is {:?}; only a breach can be repaired", cm.status),
                });
            };
            let tier = match sev {
                Severity::Minor => &c.policy().publication.minor,
                Severity::General => &c.policy().publication.general,
                Severity::Serious => &c.policy().publication.serious,
            };
            if !tier.repairable {
                return reject(Rejection::NotEligible {
                    subject: cm.subject,
                    reason: format!(
                        "{} breaches are not repairable under the consortium policy",
                        tier_name(sev)
                    ),
                });
            }
            let determined = cm
                .outcome_date
                .expect("breached commitments have an outcome date");
            let earliest = determined.plus_days(tier.min_days);
            if ctx.date() < earliest {
                return reject(Rejection::TooEarly {
                    outcome: b.outcome,
                    earliest,
                    tier: tier_name(sev),
                    min_days: tier.min_days,
                    determined,
                });
            }
            if let Some(open) = cm.open_repair {
                return reject(Rejection::WrongState {
                    what: "repair",
                    reason: format!("application {open} is still open"),
                });
            }
            cm.open_repair = Some(id);
            s.put(key::commitment(&cid), &cm);
            s.put(
                key::repair(&id),
                &st::RepairState {
                    application: id,
                    commitment: cid,
                    outcome: b.outcome,
                    subject: cm.subject.clone(),
                    status: st::RepairStatus::Pending,
                    decision: None,
                },
            );
            vec![cm.subject]
        }
        Body::RepairDecision(b) => {
            let mut r: st::RepairState = need(
                s.get(&key::repair(&b.application))?,
                "repair application",
                b.application,
            )?;
            let mut cm = commitment(s, &r.commitment)?;
            accepting_agency_only(kind, &signer, &cm, "decides this repair")?;
            if r.status != st::RepairStatus::Pending {
                return reject(Rejection::WrongState {
                    what: "repair application",
                    reason: format!("already decided ({:?})", r.status),
                });
            }
            cm.open_repair = None;
            if b.approved {
                let st::CommitmentStatus::Breached(sev) = cm.status else {
                    unreachable!("an open repair application implies a breach");
                };
                let mut p = profile(s, &cm.subject)?;
                count_status(&mut p, cm.status, -1);
                count_status(&mut p, st::CommitmentStatus::Repaired(sev), 1);
                if cm.kind == CommitmentKind::ApprovalSubstitute {
                    p.breached_notification -= 1;
                }
                s.put(key::profile(&cm.subject), &p);
                cm.status = st::CommitmentStatus::Repaired(sev);
                cm.repaired_by = Some(id);
            }
            r.status = if b.approved {
                st::RepairStatus::Approved
            } else {
                st::RepairStatus::Rejected
            };
            r.decision = Some(id);
            s.put(key::repair(&b.application), &r);
            s.put(key::commitment(&r.commitment), &cm);
            vec![cm.subject]
        }
        Body::Commission(b) => {
            let producer = enterprise_signer(kind, &signer, None)?;
            create_batch(
                s,
                &b.batch,
                &b.domain,
                &b.product,
                &b.lot,
                &b.quantity,
                &producer,
                id,
                Vec::new(),
            )?;
            vec![producer]
        }
        Body::Ship(b) => {
            let sender = enterprise_signer(kind, &signer, None)?;
            let mut bs = batch(s, &b.batch)?;
            entity(s, &b.to)?;
            if b.to == sender {
                return reject(Rejection::WrongState {
                    what: "shipment",
                    reason: "sender and receiver are the same enterprise".into(),
                });
            }
            take(s, &bs, &sender, &b.quantity)?;
            s.put(
                key::shipment(&id),
                &st::Shipment {
                    ship: id,
                    batch: b.batch.clone(),
                    from: sender.clone(),
                    to: b.to.clone(),
                    amount: b.quantity.amount,
                    received: None,
                },
            );
            append_event(s, &mut bs, id);
            s.put(key::batch(&b.batch), &bs);
            vec![sender, b.to.clone()]
        }
        Body::Receive(b) => {
            let mut sh: st::Shipment =
                need(s.get(&key::shipment(&b.shipment))?, "shipment", b.shipment)?;
            let receiver = enterprise_signer(kind, &signer, Some(&sh.to))?;
            if let Some(r) = sh.received {
                return reject(Rejection::WrongState {
                    what: "shipment",
                    reason: format!("already received by record {r}"),
                });
            }
            let mut bs = batch(s, &sh.batch)?;
            give(s, &sh.batch, &receiver, sh.amount)?;
            sh.received = Some(id);
            s.put(key::shipment(&b.shipment), &sh);
            append_event(s, &mut bs, id);
            s.put(key::batch(&sh.batch), &bs);
            vec![receiver, sh.from]
        }
        Body::Transform(b) => {
            let maker = enterprise_signer(kind, &signer, None)?;
            let mut parents = Vec::new();
            for input in &b.inputs {
                let mut bs = batch(s, &input.batch)?;
                take(s, &bs, &maker, &input.quantity)?;
                append_event(s, &mut bs, id);
                s.put(key::batch(&input.batch), &bs);
                parents.push(input.batch.clone());
            }
            for o in &b.outputs {
                create_batch(
                    s,
                    &o.batch,
                    &o.domain,
                    &o.product,
                    &o.lot,
                    &o.quantity,
                    &maker,
                    id,
                    parents.clone(),
                )?;
                for p in &parents {
                    s.put(key::downstream(p, &o.batch), &());
                }
            }
            vec![maker]
        }
        Body::Inspect(b) => {
            let mut bs = batch(s, &b.batch)?;
            require_role(
                kind,
                member_signer(kind, &signer)?,
                Role::TraceAuthority(bs.domain.clone()),
            )?;
            append_event(s, &mut bs, id);
            s.put(key::batch(&b.batch), &bs);
            vec![]
        }
        Body::Recall(b) => {
            let mut bs = batch(s, &b.batch)?;
            match &signer {
                Signer::Member(m) => {
                    require_role(kind, m, Role::TraceAuthority(bs.domain.clone()))?
                }
                Signer::Enterprise(u) if *u == bs.created_by => {}
                Signer::Enterprise(u) => {
                    return unauthorised(kind, format!("{u} did not make batch {}", bs.batch));
                }
            }
            if let Some(r) = bs.recalled {
                return reject(Rejection::WrongState {
                    what: "batch",
                    reason: format!("{} was already recalled by {r}", bs.batch),
                });
            }
            bs.recalled = Some(id);
            append_event(s, &mut bs, id);
            s.put(key::batch(&b.batch), &bs);
            vec![bs.created_by.clone()]
        }
        Body::Sell(b) => {
            let seller = enterprise_signer(kind, &signer, None)?;
            let mut bs = batch(s, &b.batch)?;
            take(s, &bs, &seller, &b.quantity)?;
            append_event(s, &mut bs, id);
            s.put(key::batch(&b.batch), &bs);
            vec![seller]
        }
        Body::Propose(b) => {
            let m = member_signer(kind, &signer)?;
            crate::governance::propose(s, c, ctx, id, m, b)?;
            Vec::new()
        }
        Body::Vote(b) => {
            let m = member_signer(kind, &signer)?;
            crate::governance::vote(s, ctx, id, m, b)?;
            Vec::new()
        }
    };
    let mut concerns = concerns;
    concerns.sort();
    concerns.dedup();
    for u in &concerns {
        s.put(key::subject_record(u, ledger_index), &id);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn create_batch(
    s: &mut Overlay,
    name: &str,
    domain: &str,
    product: &Product,
    lot: &str,
    q: &Quantity,
    owner: &Uscc,
    origin: RecordId,
    parents: Vec<String>,
) -> Ex {
    if s.get_raw(&key::batch(name))?.is_some() {
        return reject(Rejection::AlreadyExists {
            what: "batch",
            id: name.to_string(),
        });
    }
    let mut bs = st::BatchState {
        batch: name.to_string(),
        domain: domain.to_string(),
        product: product.clone(),
        lot: lot.to_string(),
        uom: q.uom.clone(),
        created_amount: q.amount,
        created_by: owner.clone(),
        origin,
        parents,
        recalled: None,
        events: 0,
        last_event: origin,
        event_chain: Hash32([0; 32]),
    };
    append_event(s, &mut bs, origin);
    s.put(key::batch(name), &bs);
    give(s, name, owner, q.amount)
}

/// The one authority check: a member acts only within the roles genesis gives it.
fn require_role(kind: Kind, m: &Member, role: Role) -> Ex {
    if m.has(&role) {
        return Ok(());
    }
    let needed = match &role {
        Role::CreditAuthority(d) => format!("a credit authority for domain '{d}'"),
        Role::TraceAuthority(d) => format!("a trace authority for domain '{d}'"),
        other => format!("a {other}"),
    };
    unauthorised(kind, format!("member '{}' is not {needed}", m.id))
}

fn authorise_registrar_or_self(kind: Kind, signer: &Signer, u: &Uscc) -> Ex {
    match signer {
        Signer::Member(m) => require_role(kind, m, Role::Registrar),
        Signer::Enterprise(e) if e == u => Ok(()),
        Signer::Enterprise(e) => unauthorised(kind, format!("{e} cannot change the keys of {u}")),
    }
}

fn commitment(s: &Overlay, id: &RecordId) -> Ex<st::CommitmentState> {
    need(s.get(&key::commitment(id))?, "commitment", id)
}

/// Outcomes and repair decisions belong to the agency that accepted the commitment:
/// it verified it and it determined any breach.
fn accepting_agency_only(kind: Kind, signer: &Signer, cm: &st::CommitmentState, act: &str) -> Ex {
    let m = member_signer(kind, signer)?;
    if m.id != cm.accepting_agency {
        return unauthorised(
            kind,
            format!(
                "only the accepting agency '{}' {act}, not '{}'",
                cm.accepting_agency, m.id
            ),
        );
    }
    Ok(())
}

fn revoke(s: &mut Overlay, k: &PublicKey, height: u64) -> Ex {
    let mut kb: st::KeyBinding = need(s.get(&key::key_binding(k))?, "key binding", k)?;
    kb.revoked_at = Some(height);
    s.put(key::key_binding(k), &kb);
    Ok(())
}
