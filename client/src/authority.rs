//! Who may sign each kind of record: the one table, [`authority`], that node execution
//! and the light client both read.
//!
//! Some rules follow from the body alone (a list measure needs a credit authority for
//! the domain it names); others name something on the ledger (an outcome belongs to the
//! agency that accepted the commitment it decides). Execution looks those parts up in
//! state and checks every rule in full; a light client, which holds no state, checks
//! what the body decides ([`Authority::member_role`]) and relies for the rest on the
//! validators whose certificate finalised the record.

use xinlian_genesis::Role;

use crate::ids::Uscc;
use crate::record::{Body, RecordId};

/// Who may sign a record, as its body states it. The variants marked *from state*
/// name the ledger entry their answer depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authority<'b> {
    /// A member holding the registrar role (`register_entity`, `bind_custody_key`,
    /// `revoke_custody_key`).
    Registrar,
    /// A registrar, or the enterprise whose keys change (`rotate_entity_key`,
    /// `revoke_entity_key`).
    RegistrarOrTheEnterprise(&'b Uscc),
    /// That enterprise alone: a commitment's subject.
    Enterprise(&'b Uscc),
    /// Any registered enterprise; what it may move is custody's question, not the
    /// signer's (`commission`, `ship`, `transform`, `sell`).
    AnyEnterprise,
    /// A member that is a credit authority for the domain the body names
    /// (`list_measure`).
    CreditAuthorityOf(&'b str),
    /// From state: the subject of the commitment that this outcome decided
    /// (`repair_application`).
    SubjectOfOutcome(&'b RecordId),
    /// From state: the party this shipment is addressed to (`receive`).
    AddresseeOf(&'b RecordId),
    /// From state: the agency that accepted this commitment, which verified it and
    /// determines any breach (`outcome`).
    AcceptingAgencyOf(&'b RecordId),
    /// From state: the agency that accepted the commitment this repair application is
    /// about (`repair_decision`).
    AcceptingAgencyOfRepair(&'b RecordId),
    /// From state: a member that is a trace authority for this batch's domain
    /// (`inspect`).
    TraceAuthorityOfBatch(&'b str),
    /// From state: a trace authority for this batch's domain, or the enterprise that
    /// made the batch (`recall`).
    TraceAuthorityOrMakerOf(&'b str),
    /// Any member (`propose`).
    AnyMember,
    /// From state: a member with a vote on this proposal, i.e. a validator of the
    /// roster in force when it was proposed (`vote`).
    ElectorateOf(&'b RecordId),
    /// From state: the agency that accepted the commitment this record is (or whose
    /// repair it applies for), which decides on its private data (`erase`).
    AgencyResponsibleFor(&'b RecordId),
}

/// The table: who may sign `body`.
pub fn authority(body: &Body) -> Authority<'_> {
    match body {
        Body::RegisterEntity(_) | Body::BindCustodyKey(_) | Body::RevokeCustodyKey(_) => {
            Authority::Registrar
        }
        Body::RotateEntityKey(b) => Authority::RegistrarOrTheEnterprise(&b.uscc),
        Body::RevokeEntityKey(b) => Authority::RegistrarOrTheEnterprise(&b.uscc),
        Body::Commitment(b) => Authority::Enterprise(&b.subject),
        Body::Outcome(b) => Authority::AcceptingAgencyOf(&b.commitment),
        Body::ListMeasure(b) => Authority::CreditAuthorityOf(&b.domain),
        Body::RepairApplication(b) => Authority::SubjectOfOutcome(&b.outcome),
        Body::RepairDecision(b) => Authority::AcceptingAgencyOfRepair(&b.application),
        Body::Commission(_) | Body::Ship(_) | Body::Transform(_) | Body::Sell(_) => {
            Authority::AnyEnterprise
        }
        Body::Receive(b) => Authority::AddresseeOf(&b.shipment),
        Body::Inspect(b) => Authority::TraceAuthorityOfBatch(&b.batch),
        Body::Recall(b) => Authority::TraceAuthorityOrMakerOf(&b.batch),
        Body::Propose(_) => Authority::AnyMember,
        Body::Vote(b) => Authority::ElectorateOf(&b.proposal),
        Body::Erase(b) => Authority::AgencyResponsibleFor(&b.record),
    }
}

/// Whether a custody key may sign `body`: the custody events of a batch, whose parties
/// it names (execution checks the batch's form and domain, `Exec::party_of`).
pub fn custody_key_may_sign(body: &Body) -> bool {
    matches!(
        body,
        Body::Commission(_)
            | Body::Ship(_)
            | Body::Receive(_)
            | Body::Transform(_)
            | Body::Sell(_)
            | Body::Recall(_)
    )
}

impl Authority<'_> {
    /// The role a member signing the record must hold, where the body alone decides
    /// it; `None` where no role is needed or the role depends on ledger state.
    pub fn member_role(&self) -> Option<Role> {
        match self {
            Authority::Registrar | Authority::RegistrarOrTheEnterprise(_) => Some(Role::Registrar),
            Authority::CreditAuthorityOf(d) => Some(Role::CreditAuthority(d.to_string())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The role a light client checks, per kind, exactly as before the table existed.
    #[test]
    fn roles_decided_by_the_body() {
        let u = Uscc("91310117MA1G0A1B2P".into());
        let id = RecordId([1; 32]);
        let cases = [
            (Authority::Registrar, Some(Role::Registrar)),
            (
                Authority::RegistrarOrTheEnterprise(&u),
                Some(Role::Registrar),
            ),
            (
                Authority::CreditAuthorityOf("market"),
                Some(Role::CreditAuthority("market".into())),
            ),
            (Authority::Enterprise(&u), None),
            (Authority::AnyEnterprise, None),
            (Authority::SubjectOfOutcome(&id), None),
            (Authority::AddresseeOf(&id), None),
            (Authority::AcceptingAgencyOf(&id), None),
            (Authority::AcceptingAgencyOfRepair(&id), None),
            (Authority::TraceAuthorityOfBatch("b"), None),
            (Authority::TraceAuthorityOrMakerOf("b"), None),
            (Authority::AnyMember, None),
            (Authority::ElectorateOf(&id), None),
            (Authority::AgencyResponsibleFor(&id), None),
        ];
        for (a, role) in cases {
            assert_eq!(a.member_role(), role, "{a:?}");
        }
    }
}
