//! Graded disclosure: who may read a record, and until when the public may
//! (docs/privacy.md). The one policy the node's answers go through — records, proofs,
//! pending records, enterprises' pages and credit records, event streams — written once
//! here so that a client can say what a reader of a given kind was entitled to see.
//!
//! A record's [`Audience`] follows from the record and what the ledger says about the
//! commitment it concerns ([`CommitmentFacts`]); whether a [`Reader`] is in it on a given
//! day is [`Audience::admits`]. Days are block dates: the publication of a breach starts
//! and ends by the chain's clock, never a node's.

use serde::{Deserialize, Serialize};
use xinlian_genesis::{PublicKey, Publication, TierName};

use crate::ids::Uscc;
use crate::party::Party;
use crate::record::{Body, Disclosure, Severity, SignedRecord, Verdict};
use crate::when::Date;

/// Who is asking, once the request's signature (if any) has been checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum Reader {
    /// No signature: anyone.
    Public,
    /// An enterprise, by the key bound to its USCC.
    Enterprise(Uscc),
    /// A consortium member (an agency or region), by a key of the roster in force. A
    /// *named agency* is a member listed by id in a record's disclosure.
    Member(String),
    /// The holder of a custody key (`bind_custody_key`): a party to the custody events
    /// of its domain, who is otherwise read to as the public (which enterprise it is
    /// the node may not know, and never says).
    Custody(PublicKey),
}

impl Reader {
    /// What the access log and refusals call the reader: `public`, `enterprise:USCC`,
    /// `member:ID`.
    pub fn label(&self) -> String {
        match self {
            Reader::Public => "public".into(),
            Reader::Enterprise(u) => format!("enterprise:{}", u.as_str()),
            Reader::Member(m) => format!("member:{m}"),
            Reader::Custody(k) => format!("custody:{k}"),
        }
    }

    /// Whether the reader sees every record's existence anyway (members hold every
    /// block), so that a refusal may say a record exists.
    pub fn knows_every_leaf(&self) -> bool {
        matches!(self, Reader::Member(_))
    }
}

/// When the public may read a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Publicity {
    Never,
    Always,
    /// From `from` (inclusive) to `until` (exclusive), by block date.
    Between {
        from: Date,
        until: Date,
    },
}

impl Publicity {
    pub fn on(&self, day: Date) -> bool {
        match *self {
            Publicity::Never => false,
            Publicity::Always => true,
            Publicity::Between { from, until } => from <= day && day < until,
        }
    }
}

/// Which members may read a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Members {
    /// Every member of the consortium (consortium-level data).
    All,
    /// Only these members (named agencies, the accepting agency, the signer).
    Named(Vec<String>),
}

/// Who may read a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audience {
    pub public: Publicity,
    /// Enterprises that always see it: those it is about.
    pub enterprises: Vec<Uscc>,
    pub members: Members,
}

impl Audience {
    fn everyone(enterprises: Vec<Uscc>) -> Audience {
        Audience {
            public: Publicity::Always,
            enterprises,
            members: Members::All,
        }
    }

    /// The only kind of check a reader's access gets.
    pub fn admits(&self, reader: &Reader, today: Date) -> bool {
        match reader {
            Reader::Public | Reader::Custody(_) => self.public.on(today),
            Reader::Enterprise(u) => self.enterprises.contains(u) || self.public.on(today),
            Reader::Member(m) => match &self.members {
                Members::All => true,
                Members::Named(ids) => ids.contains(m) || self.public.on(today),
            },
        }
    }

    /// The audience of a record still pending: never the public (it is not final, and
    /// may never be).
    pub fn pending(self) -> Audience {
        self.never_public()
    }

    /// The same readers but the public: who may read a record's private data.
    pub fn never_public(self) -> Audience {
        Audience {
            public: Publicity::Never,
            ..self
        }
    }

    fn with_member(mut self, member: Option<&str>) -> Audience {
        if let (Members::Named(ids), Some(m)) = (&mut self.members, member)
            && !ids.iter().any(|x| x == m)
        {
            ids.push(m.to_string());
        }
        self
    }
}

/// What the ledger says about the commitment a credit record concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitmentFacts {
    pub subject: Uscc,
    pub accepting_agency: String,
    pub domain: String,
    pub disclosure: Disclosure,
    pub publication_consent: bool,
    /// The breach's severity and determining date, if its outcome was a breach.
    pub breach: Option<(Severity, Date)>,
    /// The date of the decision that approved a repair of the breach, if one did.
    pub repair_approved_on: Option<Date>,
}

impl From<Severity> for TierName {
    fn from(s: Severity) -> TierName {
        match s {
            Severity::Minor => TierName::Minor,
            Severity::General => TierName::General,
            Severity::Serious => TierName::Serious,
        }
    }
}

impl CommitmentFacts {
    /// Who sees the commitment by its own disclosure level: the public only when it is
    /// public and the enterprise consented to publication.
    fn audience(&self) -> Audience {
        let members = match &self.disclosure {
            Disclosure::Public | Disclosure::Consortium => Members::All,
            Disclosure::Agencies(ids) => Members::Named(ids.clone()),
        };
        let public = if self.disclosure == Disclosure::Public && self.publication_consent {
            Publicity::Always
        } else {
            Publicity::Never
        };
        Audience {
            public,
            enterprises: vec![self.subject.clone()],
            members,
        }
        .with_member(Some(&self.accepting_agency))
    }

    /// The public window of the breach, if there is one: from the determining date to
    /// its tier's maximum, ended earlier by an approved repair — never before the tier's
    /// minimum has passed. A tier that is not published has none.
    pub fn breach_publicity(&self, policy: &Publication) -> Publicity {
        let Some((severity, determined)) = self.breach else {
            return Publicity::Never;
        };
        let tier = policy.tier(&self.domain, severity.into());
        if !tier.published {
            return Publicity::Never;
        }
        let latest = determined.plus_days(tier.max_days);
        let until = match self.repair_approved_on {
            Some(d) => latest.min(d.max(determined.plus_days(tier.min_days))),
            None => latest,
        };
        Publicity::Between {
            from: determined,
            until,
        }
    }
}

/// The party a reader is, if it is one: an enterprise by its USCC, a custody key.
fn as_party(reader: &Reader) -> Option<Party> {
    match reader {
        Reader::Enterprise(u) => Some(Party::Enterprise(u.clone())),
        Reader::Custody(k) => Some(Party::Custody(*k)),
        Reader::Public | Reader::Member(_) => None,
    }
}

/// Whether `reader` may read the hidden amounts of a trace event (docs/privacy.md §
/// Trace events): every member, and the parties to it — `signer`, the party whose key
/// signed it (an enterprise's bound key, or a custody key), and a shipment's
/// addressee. Anyone else reads the event with each opened amount replaced by its
/// commitment ([`SignedRecord::ledger_form`]), which verifies all the same.
pub fn reveals_amounts(reader: &Reader, record: &SignedRecord, signer: Option<&Party>) -> bool {
    if matches!(reader, Reader::Member(_)) {
        return true;
    }
    let Some(me) = as_party(reader) else {
        return false;
    };
    signer == Some(&me) || matches!(&record.envelope.body, Body::Ship(s) if s.to == me)
}

/// Whether `reader` may read the amounts the node keeps in state for a batch whose
/// amounts are hidden: a holding (`parties` = its holder) or a shipment (its sender and
/// addressee). The rule of [`reveals_amounts`], for derived state.
pub fn reveals_state_amount(reader: &Reader, parties: &[&Party]) -> bool {
    if matches!(reader, Reader::Member(_)) {
        return true;
    }
    as_party(reader).is_some_and(|me| parties.contains(&&me))
}

/// Who may read `record`, a final one. `facts` describes the commitment a credit record
/// concerns (a commitment, its outcome, a repair of it); without them a credit record
/// is its signer's only (fail closed). `signer_member` is the member whose key signed
/// it, if a member's did: an agency always sees its own statements.
pub fn audience(
    record: &SignedRecord,
    facts: Option<&CommitmentFacts>,
    policy: &Publication,
    signer_member: Option<&str>,
) -> Audience {
    let credit =
        |f: Option<&CommitmentFacts>, public: &dyn Fn(&CommitmentFacts) -> Publicity| match f {
            Some(f) => Audience {
                public: public(f),
                ..f.audience()
            },
            // Nothing known of the commitment (a pending record whose commitment is
            // not final): its signer only.
            None => Audience {
                public: Publicity::Never,
                enterprises: Vec::new(),
                members: Members::Named(Vec::new()),
            },
        };
    let a = match &record.envelope.body {
        Body::RegisterEntity(b) => Audience::everyone(vec![b.uscc.clone()]),
        Body::RotateEntityKey(b) => Audience::everyone(vec![b.uscc.clone()]),
        Body::RevokeEntityKey(b) => Audience::everyone(vec![b.uscc.clone()]),
        Body::ListMeasure(b) => Audience::everyone(vec![b.subject.clone()]),
        // A commitment is public by its own level until it is found breached; from then
        // on only while the breach is published (else its status would tell).
        Body::Commitment(_) => credit(facts, &|f| match f.breach {
            Some(_) => f.breach_publicity(policy),
            None => f.audience().public,
        }),
        // A breach is public only within its publication period, whatever the
        // commitment's level; a fulfilment or "not verifiable" as the commitment.
        Body::Outcome(o) => credit(facts, &|f| match o.verdict {
            Verdict::Breached(_) => f.breach_publicity(policy),
            Verdict::Fulfilled | Verdict::NotVerifiable => f.audience().public,
        }),
        // Repair files are the enterprise's and the agencies': never published.
        // So are erasure decisions: they tell that there was private data.
        Body::RepairApplication(_) | Body::RepairDecision(_) | Body::Erase(_) => {
            credit(facts, &|_| Publicity::Never)
        }
        // Traceability and governance are public; amounts a trace domain hides are
        // opened only to whom `reveals_amounts` admits (docs/privacy.md § Trace events).
        Body::Commission(_)
        | Body::Ship(_)
        | Body::Receive(_)
        | Body::Transform(_)
        | Body::Inspect(_)
        | Body::Recall(_)
        | Body::Sell(_)
        | Body::Propose(_)
        | Body::Vote(_) => Audience::everyone(Vec::new()),
        // Public but for the enterprise, whose USCC is the binding's private data: the
        // members' alone (which enterprise a custody key is, is what it hides).
        Body::BindCustodyKey(_) | Body::RevokeCustodyKey(_) => Audience::everyone(Vec::new()),
    };
    a.with_member(signer_member)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xinlian_genesis::Policy;

    fn day(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    fn uscc() -> Uscc {
        Uscc("91310000MA1FL8TQ2W".into())
    }

    fn facts(disclosure: Disclosure, breach: Option<(Severity, &str)>) -> CommitmentFacts {
        CommitmentFacts {
            subject: uscc(),
            accepting_agency: "sh-amr".into(),
            domain: "market".into(),
            disclosure,
            publication_consent: true,
            breach: breach.map(|(s, d)| (s, day(d))),
            repair_approved_on: None,
        }
    }

    #[test]
    fn a_general_breach_is_public_from_its_determining_date_to_its_maximum() {
        let p = Policy::default().publication;
        let f = facts(
            Disclosure::Consortium,
            Some((Severity::General, "2026-05-01")),
        );
        let w = f.breach_publicity(&p);
        assert!(!w.on(day("2026-04-30")));
        assert!(w.on(day("2026-05-01")));
        assert!(w.on(day("2026-05-01").plus_days(364)));
        assert!(!w.on(day("2026-05-01").plus_days(365)));
    }

    #[test]
    fn an_approved_repair_ends_publication_but_never_before_the_minimum() {
        let p = Policy::default().publication;
        let mut f = facts(Disclosure::Public, Some((Severity::General, "2026-05-01")));
        let start = day("2026-05-01");
        // Approved after the minimum: publication ends on the decision's date.
        f.repair_approved_on = Some(start.plus_days(120));
        let w = f.breach_publicity(&p);
        assert!(w.on(start.plus_days(119)));
        assert!(!w.on(start.plus_days(120)));
        // Approved before the minimum (an exception a policy could allow): it still
        // runs to the minimum.
        f.repair_approved_on = Some(start.plus_days(10));
        let w = f.breach_publicity(&p);
        assert!(w.on(start.plus_days(89)));
        assert!(!w.on(start.plus_days(90)));
    }

    #[test]
    fn minor_breaches_are_not_published_and_domains_have_their_own_tiers() {
        let mut p = Policy::default().publication;
        let f = facts(Disclosure::Public, Some((Severity::Minor, "2026-05-01")));
        assert_eq!(f.breach_publicity(&p), Publicity::Never);
        let mut drug = f.clone();
        drug.domain = "drug".into();
        drug.breach = Some((Severity::Serious, day("2026-05-01")));
        let mut serious = p.serious.clone();
        serious.max_days = 5 * 365;
        p.domains.push(xinlian_genesis::DomainPublication {
            domain: "drug".into(),
            minor: p.minor.clone(),
            general: p.general.clone(),
            serious,
        });
        assert!(
            drug.breach_publicity(&p)
                .on(day("2026-05-01").plus_days(4 * 365))
        );
        drug.domain = "market".into();
        assert!(
            !drug
                .breach_publicity(&p)
                .on(day("2026-05-01").plus_days(4 * 365))
        );
    }

    #[test]
    fn readers_see_what_their_level_allows() {
        let today = day("2026-06-01");
        let other = Uscc("91110000600037341L".into());
        let named = facts(Disclosure::Agencies(vec!["js-amr".into()]), None).audience();
        assert!(!named.admits(&Reader::Public, today));
        assert!(named.admits(&Reader::Enterprise(uscc()), today));
        assert!(!named.admits(&Reader::Enterprise(other.clone()), today));
        assert!(named.admits(&Reader::Member("js-amr".into()), today));
        assert!(
            named.admits(&Reader::Member("sh-amr".into()), today),
            "the accepting agency"
        );
        assert!(!named.admits(&Reader::Member("zj-ndrc".into()), today));
        let consortium = facts(Disclosure::Consortium, None).audience();
        assert!(consortium.admits(&Reader::Member("zj-ndrc".into()), today));
        assert!(!consortium.admits(&Reader::Public, today));
        assert!(!consortium.admits(&Reader::Enterprise(other), today));
        let mut public = facts(Disclosure::Public, None);
        assert!(public.audience().admits(&Reader::Public, today));
        assert!(!public.audience().pending().admits(&Reader::Public, today));
        public.publication_consent = false;
        assert!(
            !public.audience().admits(&Reader::Public, today),
            "no consent, not public"
        );
    }
}
