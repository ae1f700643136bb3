//! Record execution: validation against state and the state transition of every
//! record kind, a pure function of (state, consortium, block context, record). No
//! clock, no I/O: the block time is data, and state is read through [`Overlay`].
//!
//! This module holds the entry point, [`execute_record`], the dispatch by kind, the
//! refusals, and what several families share: resolving the signer, checking it
//! against the table of who may sign what ([`authority`]), roles and dates. The
//! families are `entities` (enterprise keys), `credit` (commitments, outcomes,
//! lists, repair) and `custody` (batches and their events); governance is
//! [`crate::governance`].

use xinlian_client::authority::{Authority, authority};
use xinlian_client::checks::StatelessError;
use xinlian_client::ids::Uscc;
use xinlian_client::party::Party;
use xinlian_client::record::*;
use xinlian_client::state::{self as st, key};
use xinlian_client::when::Date;
use xinlian_genesis::{Member, PublicKey, Role};

pub use crate::consortium::Consortium;
use crate::overlay::{Overlay, StateError};

mod credit;
mod custody;
mod entities;

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
    #[error("signer key {key} of {holder} was revoked at height {height}")]
    KeyRevoked {
        key: PublicKey,
        /// The enterprise's USCC, or `a custody key for domain D`.
        holder: String,
        height: u64,
    },
    #[error("{kind} not authorised: {reason}")]
    Unauthorised { kind: &'static str, reason: String },
    #[error(
        "key {key} is, or was once, named for consortium member '{member}': it can never be an enterprise's"
    )]
    MemberKey { key: PublicKey, member: String },
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{what} {id} already exists")]
    AlreadyExists { what: &'static str, id: String },
    #[error("{what}: {reason}")]
    WrongState { what: &'static str, reason: String },
    #[error("{holder} holds {held} {uom} of batch {batch}, cannot move {wanted}")]
    Insufficient {
        batch: String,
        /// The holder's readable form (`Party`'s).
        holder: String,
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
    /// An amount in the wrong form for its batch's domain (`policy.trace`).
    #[error("the amount of batch {batch} (domain {domain}) {reason}")]
    AmountForm {
        batch: String,
        domain: String,
        reason: &'static str,
    },
    /// A party named in the wrong form for its batch: a USCC or an enterprise's own key
    /// where the batch names its parties by custody keys, or the reverse.
    #[error("batch {batch} (domain {domain}) {reason}")]
    PartyForm {
        batch: String,
        domain: String,
        reason: String,
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
            Rejection::Stateless(StatelessError::Possession { .. }) => "bad_possession",
            Rejection::Stateless(StatelessError::InClear { .. }) => "in_clear",
            Rejection::Stateless(_) => "invalid_field",
            Rejection::Duplicate(_) => "duplicate",
            Rejection::UnknownSigner(_) => "unknown_signer",
            Rejection::KeyRevoked { .. } => "key_revoked",
            Rejection::Unauthorised { .. } => "unauthorised",
            Rejection::MemberKey { .. } => "member_key",
            Rejection::NotFound { .. } => "not_found",
            Rejection::AlreadyExists { .. } => "already_exists",
            Rejection::WrongState { .. } => "wrong_state",
            Rejection::Insufficient { .. } => "insufficient_quantity",
            Rejection::UnitMismatch { .. } => "unit_mismatch",
            Rejection::AmountForm { .. } => "amount_form",
            Rejection::PartyForm { .. } => "party_form",
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
    /// A custody key: it signs custody events of its domain's pseudonymous batches only.
    Custody {
        key: PublicKey,
        domain: String,
    },
}

fn resolve_signer<'c>(s: &Overlay, c: &'c Consortium, signer: &PublicKey) -> Ex<Signer<'c>> {
    if let Some(m) = c.member_by_signing_key(signer) {
        return Ok(Signer::Member(m));
    }
    // Enterprise keys first: most records are theirs. A key is never both (`key_is_free`).
    if let Some(kb) = s.get::<st::KeyBinding>(&key::key_binding(signer))? {
        return match kb.revoked_at {
            Some(height) => reject(Rejection::KeyRevoked {
                key: *signer,
                holder: kb.uscc.to_string(),
                height,
            }),
            None => Ok(Signer::Enterprise(kb.uscc)),
        };
    }
    match s.get::<st::CustodyKey>(&key::custody_key(signer))? {
        None => reject(Rejection::UnknownSigner(*signer)),
        Some(ck) => match ck.revoked_at {
            Some(height) => reject(Rejection::KeyRevoked {
                key: *signer,
                holder: format!("a custody key for domain {}", ck.domain),
                height,
            }),
            None => Ok(Signer::Custody {
                key: *signer,
                domain: ck.domain,
            }),
        },
    }
}

/// One record being executed: what every family needs besides state and its body.
pub(crate) struct Exec<'a, 'c> {
    pub c: &'c Consortium,
    pub ctx: &'a BlockContext,
    pub id: RecordId,
    pub body: &'a Body,
    pub signer: Signer<'c>,
}

/// What the table leaves to ledger state, as the family executing the record found
/// it: see the variants of [`Authority`] marked *from state*.
#[derive(Debug)]
pub(crate) enum Found<'a> {
    /// The rule follows from the body alone.
    Nothing,
    /// The enterprise the rule names: a commitment's subject.
    Enterprise(&'a Uscc),
    /// The party the rule names: a shipment's addressee.
    Party(&'a Party),
    /// The agency that accepted the commitment.
    Agency(&'a str),
    /// The batch the record is an event of.
    Batch(&'a st::BatchState),
}

impl<'c> Exec<'_, 'c> {
    pub(crate) fn kind(&self) -> Kind {
        self.body.kind()
    }

    /// Checks the signer against the table's rule for this record ([`authority`]),
    /// the state-dependent part of which the family has looked up as `found`. A vote's
    /// electorate is the proposal's, checked by [`crate::governance::vote`] once it
    /// knows the proposal is open.
    pub(crate) fn authorise(&self, found: Found<'_>) -> Ex {
        let kind = self.kind();
        match (authority(self.body), found) {
            (Authority::Registrar, Found::Nothing) => {
                require_role(kind, self.member_signer()?, Role::Registrar)
            }
            (Authority::CreditAuthorityOf(d), Found::Nothing) => require_role(
                kind,
                self.member_signer()?,
                Role::CreditAuthority(d.to_string()),
            ),
            (Authority::AnyMember | Authority::ElectorateOf(_), Found::Nothing) => {
                self.member_signer().map(|_| ())
            }
            (Authority::AcceptingAgencyOf(_), Found::Agency(agency)) => {
                self.the_agency(agency, "verifies this commitment")
            }
            (Authority::AcceptingAgencyOfRepair(_), Found::Agency(agency)) => {
                self.the_agency(agency, "decides this repair")
            }
            (Authority::AgencyResponsibleFor(_), Found::Agency(agency)) => {
                self.the_agency(agency, "decides on this record's private data")
            }
            (Authority::TraceAuthorityOfBatch(_), Found::Batch(b)) => require_role(
                kind,
                self.member_signer()?,
                Role::TraceAuthority(b.domain.clone()),
            ),
            (Authority::TraceAuthorityOrMakerOf(_), Found::Batch(b)) => match &self.signer {
                Signer::Member(m) => require_role(kind, m, Role::TraceAuthority(b.domain.clone())),
                _ => {
                    let maker = self.party_of(b)?;
                    match maker == b.created_by {
                        true => Ok(()),
                        false => {
                            unauthorised(kind, format!("{maker} did not make batch {}", b.batch))
                        }
                    }
                }
            },
            (Authority::RegistrarOrTheEnterprise(u), Found::Nothing) => match &self.signer {
                Signer::Member(m) => require_role(kind, m, Role::Registrar),
                Signer::Enterprise(e) if e == u => Ok(()),
                Signer::Enterprise(e) => {
                    unauthorised(kind, format!("{e} cannot change the keys of {u}"))
                }
                Signer::Custody { key, .. } => {
                    unauthorised(kind, format!("custody key {key} signs custody events only"))
                }
            },
            // What a custody key may sign is custody's question (`Exec::party`).
            (Authority::AnyEnterprise, Found::Nothing) => match &self.signer {
                Signer::Custody { .. } => Ok(()),
                _ => self.enterprise_signer(None),
            },
            (Authority::AddresseeOf(_), Found::Party(to)) => match &self.signer {
                Signer::Member(_) => self.enterprise_signer(None),
                _ => match self.signer_party() == Some(to.clone()) {
                    true => Ok(()),
                    false => unauthorised(
                        kind,
                        format!(
                            "signed by {}, but only the addressee {to} may sign it",
                            self.signer_label()
                        ),
                    ),
                },
            },
            (Authority::Enterprise(u), Found::Nothing)
            | (Authority::SubjectOfOutcome(_), Found::Enterprise(u)) => {
                self.enterprise_signer(Some(u))
            }
            // A family passing the wrong kind of looked-up state is a bug in this
            // crate; it refuses the record (the same on every node) rather than halt.
            (rule, found) => unauthorised(
                kind,
                format!("internal: rule {rule:?} cannot be decided from {found:?}"),
            ),
        }
    }

    fn enterprise_signer(&self, expected: Option<&Uscc>) -> Ex {
        let kind = self.kind();
        match &self.signer {
            Signer::Enterprise(u) => match expected {
                Some(e) if e != u => {
                    unauthorised(kind, format!("signed by {u}, but only {e} may sign it"))
                }
                _ => Ok(()),
            },
            Signer::Member(m) => unauthorised(
                kind,
                format!(
                    "must be signed by an enterprise key, not by member '{}'",
                    m.id
                ),
            ),
            Signer::Custody { key, .. } => {
                unauthorised(kind, format!("custody key {key} signs custody events only"))
            }
        }
    }

    fn member_signer(&self) -> Ex<&'c Member> {
        match &self.signer {
            Signer::Member(m) => Ok(m),
            _ => unauthorised(
                self.kind(),
                format!(
                    "must be signed by an agency, not by {}",
                    self.signer_label()
                ),
            ),
        }
    }

    /// The signer as refusals name it.
    fn signer_label(&self) -> String {
        match &self.signer {
            Signer::Member(m) => format!("member '{}'", m.id),
            Signer::Enterprise(u) => format!("enterprise {u}"),
            Signer::Custody { key, .. } => format!("custody key {key}"),
        }
    }

    /// The signer as a party, if it is one (an enterprise's key or a custody key).
    fn signer_party(&self) -> Option<Party> {
        match &self.signer {
            Signer::Member(_) => None,
            Signer::Enterprise(u) => Some(Party::Enterprise(u.clone())),
            Signer::Custody { key, .. } => Some(Party::Custody(*key)),
        }
    }

    /// The signer as a party to an event of batch `b`: in the form the batch names its
    /// parties in (custody keys bound for its domain, or enterprises' own keys).
    pub(crate) fn party_of(&self, b: &st::BatchState) -> Ex<Party> {
        let pseudonymous = matches!(b.created_by, Party::Custody(_));
        self.party(&b.batch, &b.domain, pseudonymous)
    }

    /// The signer as a party to an event of batch `batch` of `domain`, which names its
    /// parties by custody keys if `pseudonymous`.
    pub(crate) fn party(&self, batch: &str, domain: &str, pseudonymous: bool) -> Ex<Party> {
        let wrong = |reason: String| {
            reject(Rejection::PartyForm {
                batch: batch.to_string(),
                domain: domain.to_string(),
                reason,
            })
        };
        match (&self.signer, pseudonymous) {
            (Signer::Enterprise(u), false) => Ok(Party::Enterprise(u.clone())),
            (Signer::Custody { key, domain: d }, true) if d == domain => Ok(Party::Custody(*key)),
            (Signer::Enterprise(u), true) => wrong(format!(
                "names its parties by custody keys: {u} signs its events with the custody key \
                 bound for it in this domain, not its own"
            )),
            (Signer::Custody { key, domain: d }, true) => wrong(format!(
                "is not of domain {d}, the one custody key {key} is bound for"
            )),
            (Signer::Custody { key, .. }, false) => wrong(format!(
                "names its parties by USCC: custody key {key} cannot sign its events"
            )),
            (Signer::Member(m), _) => unauthorised(
                self.kind(),
                format!(
                    "must be signed by an enterprise key, not by member '{}'",
                    m.id
                ),
            ),
        }
    }

    /// Outcomes and repair decisions belong to the agency that accepted the
    /// commitment: it verified it and it determined any breach.
    fn the_agency(&self, agency: &str, act: &str) -> Ex {
        let m = self.member_signer()?;
        if m.id != agency {
            return unauthorised(
                self.kind(),
                format!("only the accepting agency '{agency}' {act}, not '{}'", m.id),
            );
        }
        Ok(())
    }

    /// The enterprise that signed, once [`Exec::authorise`] admitted it under a rule
    /// that admits enterprises only.
    pub(crate) fn enterprise(&self) -> Uscc {
        match &self.signer {
            Signer::Enterprise(u) => u.clone(),
            _ => unreachable!(
                "authorised: {} cannot sign a {}",
                self.signer_label(),
                self.kind().name()
            ),
        }
    }

    /// The member that signed, once [`Exec::authorise`] admitted it under a rule that
    /// admits members only.
    pub(crate) fn member(&self) -> &'c Member {
        match &self.signer {
            Signer::Member(m) => m,
            _ => unreachable!(
                "authorised: {} cannot sign a {}",
                self.signer_label(),
                self.kind().name()
            ),
        }
    }
}

/// The one role check: a member acts only within the roles its roster gives it.
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

/// Validates `rec` against state and applies it, atomically: replay protection, the
/// signer, the family of the record's kind, and the index of records by the
/// enterprises they concern. `ledger_index` is the position the record takes in the
/// ledger-wide tree.
pub fn execute_record(
    s: &mut Overlay,
    c: &Consortium,
    ctx: &BlockContext,
    rec: &EncodedRecord,
    ledger_index: u64,
) -> Ex {
    s.atomically(|s| {
        let id = rec.id();
        if s.get_raw(&key::seen(&id))?.is_some() {
            return reject(Rejection::Duplicate(id));
        }
        s.put(key::seen(&id), &(ctx.height, ledger_index));
        let env = &rec.record().envelope;
        let x = Exec {
            c,
            ctx,
            id,
            body: &env.body,
            signer: resolve_signer(s, c, &env.signer)?,
        };
        let mut concerns = by_family(s, &x)?;
        concerns.sort();
        concerns.dedup();
        let credit = xinlian_client::credit::is_credit_kind(x.kind());
        for u in &concerns {
            s.put(key::subject_record(u, ledger_index), &id);
            if credit {
                let mut cs = s
                    .get::<st::CreditState>(&key::credit(u))?
                    .unwrap_or_else(|| st::CreditState::new(u.clone()));
                cs.extend(ledger_index, &id);
                s.put(key::credit(u), &cs);
                s.put(key::credit_record(u, ledger_index), &id);
            }
        }
        Ok(())
    })
}

/// Executes the record in its family; returns the enterprises it concerns.
fn by_family(s: &mut Overlay, x: &Exec) -> Ex<Vec<Uscc>> {
    let (c, ctx, id) = (x.c, x.ctx, x.id);
    Ok(match x.body {
        Body::RegisterEntity(b) => entities::register(s, x, b)?,
        Body::RotateEntityKey(b) => entities::rotate(s, x, b)?,
        Body::RevokeEntityKey(b) => entities::revoke(s, x, b)?,
        Body::Commitment(b) => credit::commitment(s, x, b)?,
        Body::Outcome(b) => credit::outcome(s, x, b)?,
        Body::ListMeasure(b) => credit::list_measure(s, x, b)?,
        Body::RepairApplication(b) => credit::repair_application(s, x, b)?,
        Body::RepairDecision(b) => credit::repair_decision(s, x, b)?,
        Body::Erase(b) => credit::erase(s, x, b)?,
        Body::BindCustodyKey(b) => entities::bind_custody_key(s, x, b)?,
        Body::RevokeCustodyKey(b) => entities::revoke_custody_key(s, x, b)?,
        Body::Commission(b) => custody::commission(s, x, b)?,
        Body::Ship(b) => custody::ship(s, x, b)?,
        Body::Receive(b) => custody::receive(s, x, b)?,
        Body::Transform(b) => custody::transform(s, x, b)?,
        Body::Inspect(b) => custody::inspect(s, x, b)?,
        Body::Recall(b) => custody::recall(s, x, b)?,
        Body::Sell(b) => custody::sell(s, x, b)?,
        Body::Propose(b) => {
            x.authorise(Found::Nothing)?;
            crate::governance::propose(s, c, ctx, id, x.member(), b)?;
            Vec::new()
        }
        Body::Vote(b) => {
            x.authorise(Found::Nothing)?;
            crate::governance::vote(s, ctx, id, x.member(), b)?;
            Vec::new()
        }
    })
}
