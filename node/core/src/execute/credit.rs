//! Credit: an enterprise's commitment to an accepting agency, the agency's outcome,
//! credit authorities' list measures, and repair (the enterprise's application, the
//! determining agency's decision), with each enterprise's profile of counts by status.

use xinlian_client::ids::Uscc;
use xinlian_client::record::{
    Commitment, CommitmentKind, Erase, ListAction, ListKind, ListMeasure, Outcome, RecordId,
    RepairApplication, RepairDecision, Severity, Verdict,
};
use xinlian_client::state::{self as st, key};
use xinlian_genesis::Role;

use super::{Ex, Exec, Found, Rejection, entity, need, not_dated_after, reject, require_role};
use crate::overlay::Overlay;

pub(super) fn commitment(s: &mut Overlay, x: &Exec, b: &Commitment) -> Ex<Vec<Uscc>> {
    x.authorise(Found::Nothing)?;
    let subject = x.enterprise();
    // The body names the agency it is made to: that agency must be able to verify it.
    let agency = need(
        x.c.roster.member(&b.accepting_agency),
        "accepting agency",
        &b.accepting_agency,
    )?;
    require_role(x.kind(), agency, Role::CreditAuthority(b.domain.clone()))?;
    not_dated_after("commitment", b.date, x.ctx)?;
    let mut cs = credit_state(s, &subject)?;
    if b.kind == CommitmentKind::ApprovalSubstitute {
        let p = &cs.profile;
        let reason = if serious_listing_in_force(s, x, &subject)? {
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
    cs.profile.on_commitment();
    s.put(key::credit(&subject), &cs);
    s.put(
        key::commitment(&x.id),
        &st::CommitmentState {
            id: x.id,
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
    Ok(vec![subject])
}

pub(super) fn outcome(s: &mut Overlay, x: &Exec, b: &Outcome) -> Ex<Vec<Uscc>> {
    let mut cm = commitment_state(s, &b.commitment)?;
    x.authorise(Found::Agency(&cm.accepting_agency))?;
    if cm.status != st::CommitmentStatus::Pending {
        return reject(Rejection::WrongState {
            what: "commitment",
            reason: format!(
                "{} was already decided by outcome {}",
                b.commitment,
                cm.outcome
                    .map_or_else(|| "an earlier outcome".into(), |o| o.to_string())
            ),
        });
    }
    not_dated_after("outcome", b.date, x.ctx)?;
    let status = match b.verdict {
        Verdict::Fulfilled => st::CommitmentStatus::Fulfilled,
        Verdict::NotVerifiable => st::CommitmentStatus::NotVerifiable,
        Verdict::Breached(sev) => st::CommitmentStatus::Breached(sev),
    };
    let mut cs = credit_state(s, &cm.subject)?;
    cs.profile.on_outcome(cm.kind, status);
    s.put(key::credit(&cm.subject), &cs);
    cm.status = status;
    cm.outcome = Some(x.id);
    cm.outcome_date = Some(b.date);
    s.put(key::commitment(&b.commitment), &cm);
    s.put(key::outcome(&x.id), &b.commitment);
    Ok(vec![cm.subject])
}

pub(super) fn list_measure(s: &mut Overlay, x: &Exec, b: &ListMeasure) -> Ex<Vec<Uscc>> {
    x.authorise(Found::Nothing)?;
    entity(s, &b.subject)?;
    not_dated_after("list measure", b.date, x.ctx)?;
    let lk = key::list(b.list, &b.subject);
    let on_list = s.get_raw(&lk)?.is_some();
    let mut serious_basis = false;
    for r in &b.basis {
        let cid: RecordId = need(s.get(&key::outcome(r))?, "outcome", r)?;
        let cm = commitment_state(s, &cid)?;
        if cm.subject != b.subject {
            return reject(Rejection::WrongState {
                what: "basis",
                reason: format!("outcome {r} concerns {}, not {}", cm.subject, b.subject),
            });
        }
        serious_basis |= cm.status == st::CommitmentStatus::Breached(Severity::Serious);
    }
    let mut cs = credit_state(s, &b.subject)?;
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
            let until = b.date.plus_days(listing_days(x, b.list));
            cs.profile.set_listed(b.list, Some(until));
            s.put(
                lk,
                &st::ListEntry {
                    list: b.list,
                    subject: b.subject.clone(),
                    domain: b.domain.clone(),
                    measure: x.id,
                    date: b.date,
                    until,
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
            cs.profile.set_listed(b.list, None);
            s.delete(lk);
        }
    }
    s.put(key::credit(&b.subject), &cs);
    Ok(vec![b.subject.clone()])
}

pub(super) fn repair_application(
    s: &mut Overlay,
    x: &Exec,
    b: &RepairApplication,
) -> Ex<Vec<Uscc>> {
    not_dated_after("repair application", b.date, x.ctx)?;
    let cid: RecordId = need(s.get(&key::outcome(&b.outcome))?, "outcome", b.outcome)?;
    let mut cm = commitment_state(s, &cid)?;
    x.authorise(Found::Enterprise(&cm.subject))?;
    let st::CommitmentStatus::Breached(sev) = cm.status else {
        return reject(Rejection::WrongState {
            what: "commitment",
            reason: format!("status is {:?}; only a breach can be repaired", cm.status),
        });
    };
    let tier = x.c.policy().publication.tier(&cm.domain, sev.into());
    if !tier.repairable {
        return reject(Rejection::NotEligible {
            subject: cm.subject,
            reason: format!(
                "{} breaches are not repairable under the consortium policy",
                tier_name(sev)
            ),
        });
    }
    let Some(determined) = cm.outcome_date else {
        return reject(Rejection::WrongState {
            what: "commitment",
            reason: format!("breach of {cid} has no determining date"),
        });
    };
    let earliest = determined.plus_days(tier.min_days);
    if x.ctx.date() < earliest {
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
    cm.open_repair = Some(x.id);
    s.put(key::commitment(&cid), &cm);
    s.put(
        key::repair(&x.id),
        &st::RepairState {
            application: x.id,
            commitment: cid,
            outcome: b.outcome,
            subject: cm.subject.clone(),
            status: st::RepairStatus::Pending,
            decision: None,
        },
    );
    Ok(vec![cm.subject])
}

pub(super) fn repair_decision(s: &mut Overlay, x: &Exec, b: &RepairDecision) -> Ex<Vec<Uscc>> {
    // A decision dated ahead would end a breach's publication, and lift its grade
    // effects, before it was taken.
    not_dated_after("repair decision", b.date, x.ctx)?;
    let mut r: st::RepairState = need(
        s.get(&key::repair(&b.application))?,
        "repair application",
        b.application,
    )?;
    let mut cm = commitment_state(s, &r.commitment)?;
    x.authorise(Found::Agency(&cm.accepting_agency))?;
    if r.status != st::RepairStatus::Pending {
        return reject(Rejection::WrongState {
            what: "repair application",
            reason: format!("already decided ({:?})", r.status),
        });
    }
    cm.open_repair = None;
    if b.approved {
        let st::CommitmentStatus::Breached(sev) = cm.status else {
            return reject(Rejection::WrongState {
                what: "commitment",
                reason: format!("status is {:?}; only a breach can be repaired", cm.status),
            });
        };
        let mut cs = credit_state(s, &cm.subject)?;
        cs.profile.on_repaired(cm.kind, sev);
        s.put(key::credit(&cm.subject), &cs);
        cm.status = st::CommitmentStatus::Repaired(sev);
        cm.repaired_by = Some(x.id);
    }
    r.status = if b.approved {
        st::RepairStatus::Approved
    } else {
        st::RepairStatus::Rejected
    };
    r.decision = Some(x.id);
    s.put(key::repair(&b.application), &r);
    s.put(key::commitment(&r.commitment), &cm);
    Ok(vec![cm.subject])
}

fn commitment_state(s: &Overlay, id: &RecordId) -> Ex<st::CommitmentState> {
    need(s.get(&key::commitment(id))?, "commitment", id)
}

fn credit_state(s: &Overlay, u: &Uscc) -> Ex<st::CreditState> {
    Ok(s.get(&key::credit(u))?
        .unwrap_or_else(|| st::CreditState::new(u.clone())))
}

/// How long a listing on `list` recorded now lasts, under the rules in force.
fn listing_days(x: &Exec, list: ListKind) -> u32 {
    let g = &x.c.policy().grading;
    match list {
        ListKind::Reward => g.reward_list_days,
        ListKind::SeriousDishonesty => g.serious_list_days,
    }
}

/// Whether `u` is on the serious-dishonesty list on the block's date: listed, in
/// effect by then, and not lapsed (as [`xinlian_client::credit::Listing::in_force`]).
fn serious_listing_in_force(s: &Overlay, x: &Exec, u: &Uscc) -> Ex<bool> {
    let Some(e) = s.get::<st::ListEntry>(&key::list(ListKind::SeriousDishonesty, u))? else {
        return Ok(false);
    };
    let today = x.ctx.date();
    Ok(e.date <= today && today < e.until)
}

/// An erasure decision, once per record: the record must be one that can hold private
/// data — a commitment or a repair application, decided by the agency that accepted
/// the commitment, or a registration naming an operator, decided by the registrar
/// that registered the enterprise.
pub(super) fn erase(s: &mut Overlay, x: &Exec, b: &Erase) -> Ex<Vec<Uscc>> {
    not_dated_after("erasure", b.date, x.ctx)?;
    let (responsible, subject) = if let Some(u) = s.get::<Uscc>(&key::operator(&b.record))? {
        (entity(s, &u)?.registered_by, u)
    } else {
        let commitment = if s.get_raw(&key::commitment(&b.record))?.is_some() {
            b.record
        } else {
            let r: Option<st::RepairState> = s.get(&key::repair(&b.record))?;
            need(
                r,
                "commitment, repair application or registration naming an operator",
                b.record,
            )?
            .commitment
        };
        let cm = commitment_state(s, &commitment)?;
        (cm.accepting_agency, cm.subject)
    };
    x.authorise(Found::Agency(&responsible))?;
    if s.get_raw(&key::erasure(&b.record))?.is_some() {
        return reject(Rejection::WrongState {
            what: "record",
            reason: format!(
                "the private data of {} was already ordered erased",
                b.record
            ),
        });
    }
    s.put(
        key::erasure(&b.record),
        &st::ErasureState {
            erase: x.id,
            height: x.ctx.height,
            date: b.date,
        },
    );
    Ok(vec![subject])
}

fn tier_name(sev: Severity) -> &'static str {
    match sev {
        Severity::Minor => "minor",
        Severity::General => "general",
        Severity::Serious => "serious",
    }
}
