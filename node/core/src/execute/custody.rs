//! Traceability: batches are commissioned or made by transforms, shipped, received,
//! inspected, recalled and sold. Each event extends its batch's event chain; custody
//! moves through holdings, one amount per (batch, holder), and passes on receipt.

use xinlian_client::hidden::Amount;
use xinlian_client::ids::Uscc;
use xinlian_client::party::Party;
use xinlian_client::record::{
    Commission, Inspect, Product, Quantity, Recall, Receive, RecordId, Sell, Ship, Transform,
};
use xinlian_client::state::{self as st, key};
use xinlian_genesis::{Hash32, TraceField};

use super::{Ex, Exec, Found, Rejection, entity, need, reject};
use crate::overlay::Overlay;

pub(super) fn commission(s: &mut Overlay, x: &Exec, b: &Commission) -> Ex<Vec<Uscc>> {
    x.authorise(Found::Nothing)?;
    let producer = x.party(&b.batch, &b.domain, pseudonymous(x, &b.domain))?;
    let new = BatchSpec {
        name: &b.batch,
        domain: &b.domain,
        product: &b.product,
        lot: &b.lot,
        quantity: &b.quantity,
    };
    create_batch(s, x, new, &producer, Vec::new())?;
    Ok(enterprises([&producer]))
}

pub(super) fn ship(s: &mut Overlay, x: &Exec, b: &Ship) -> Ex<Vec<Uscc>> {
    x.authorise(Found::Nothing)?;
    let mut bs = batch(s, &b.batch)?;
    let sender = x.party_of(&bs)?;
    addressee(s, &bs, &b.to)?;
    if b.to == sender {
        return reject(Rejection::WrongState {
            what: "shipment",
            reason: "sender and receiver are the same party".into(),
        });
    }
    let amount = take(s, x, &bs, &sender, &b.quantity)?;
    s.put(
        key::shipment(&x.id),
        &st::Shipment {
            ship: x.id,
            batch: b.batch.clone(),
            from: sender.clone(),
            to: b.to.clone(),
            amount,
            received: None,
        },
    );
    append_event(s, &mut bs, x.id);
    s.put(key::batch(&b.batch), &bs);
    Ok(enterprises([&sender, &b.to]))
}

pub(super) fn receive(s: &mut Overlay, x: &Exec, b: &Receive) -> Ex<Vec<Uscc>> {
    let mut sh: st::Shipment = need(s.get(&key::shipment(&b.shipment))?, "shipment", b.shipment)?;
    let mut bs = batch(s, &sh.batch)?;
    // The signer as a party in the batch's form (a member, or the wrong form, refused
    // as such) before it is compared with the addressee.
    let receiver = x.party_of(&bs)?;
    x.authorise(Found::Party(&sh.to))?;
    if let Some(r) = sh.received {
        return reject(Rejection::WrongState {
            what: "shipment",
            reason: format!("already received by record {r}"),
        });
    }
    give(s, &sh.batch, &receiver, sh.amount)?;
    sh.received = Some(x.id);
    s.put(key::shipment(&b.shipment), &sh);
    append_event(s, &mut bs, x.id);
    s.put(key::batch(&sh.batch), &bs);
    Ok(enterprises([&receiver, &sh.from]))
}

pub(super) fn transform(s: &mut Overlay, x: &Exec, b: &Transform) -> Ex<Vec<Uscc>> {
    x.authorise(Found::Nothing)?;
    // One signer, so one form of party: inputs and outputs alike must name their
    // parties as the signer's key can (a custody key is bound for one domain).
    let mut maker = None;
    let mut parents = Vec::new();
    for input in &b.inputs {
        let mut bs = batch(s, &input.batch)?;
        let party = x.party_of(&bs)?;
        take(s, x, &bs, &party, &input.quantity)?;
        append_event(s, &mut bs, x.id);
        s.put(key::batch(&input.batch), &bs);
        parents.push(input.batch.clone());
        maker = Some(party);
    }
    for o in &b.outputs {
        let party = x.party(&o.batch, &o.domain, pseudonymous(x, &o.domain))?;
        let new = BatchSpec {
            name: &o.batch,
            domain: &o.domain,
            product: &o.product,
            lot: &o.lot,
            quantity: &o.quantity,
        };
        create_batch(s, x, new, &party, parents.clone())?;
        for p in &parents {
            s.put(key::downstream(p, &o.batch), &());
        }
        maker = Some(party);
    }
    Ok(enterprises(maker.as_ref()))
}

pub(super) fn inspect(s: &mut Overlay, x: &Exec, b: &Inspect) -> Ex<Vec<Uscc>> {
    let mut bs = batch(s, &b.batch)?;
    x.authorise(Found::Batch(&bs))?;
    append_event(s, &mut bs, x.id);
    s.put(key::batch(&b.batch), &bs);
    Ok(vec![])
}

pub(super) fn recall(s: &mut Overlay, x: &Exec, b: &Recall) -> Ex<Vec<Uscc>> {
    let mut bs = batch(s, &b.batch)?;
    x.authorise(Found::Batch(&bs))?;
    if let Some(r) = bs.recalled {
        return reject(Rejection::WrongState {
            what: "batch",
            reason: format!("{} was already recalled by {r}", bs.batch),
        });
    }
    bs.recalled = Some(x.id);
    append_event(s, &mut bs, x.id);
    s.put(key::batch(&b.batch), &bs);
    Ok(enterprises([&bs.created_by]))
}

pub(super) fn sell(s: &mut Overlay, x: &Exec, b: &Sell) -> Ex<Vec<Uscc>> {
    x.authorise(Found::Nothing)?;
    let mut bs = batch(s, &b.batch)?;
    let seller = x.party_of(&bs)?;
    take(s, x, &bs, &seller, &b.quantity)?;
    append_event(s, &mut bs, x.id);
    s.put(key::batch(&b.batch), &bs);
    Ok(enterprises([&seller]))
}

/// Whether a batch made now in `domain` names its parties by custody keys: the policy
/// in force decides at creation, and the batch keeps the form for its life.
fn pseudonymous(x: &Exec, domain: &str) -> bool {
    (x.c.policy().trace).hides(domain, TraceField::Counterparty)
}

/// The enterprises named by USCC among `parties`: the records' index by enterprise
/// never names the holder of a custody key.
fn enterprises<'p>(parties: impl IntoIterator<Item = &'p Party>) -> Vec<Uscc> {
    parties
        .into_iter()
        .filter_map(Party::uscc)
        .cloned()
        .collect()
}

/// A shipment's addressee, in the batch's form: a registered enterprise, or a custody
/// key bound for the batch's domain.
fn addressee(s: &Overlay, b: &st::BatchState, to: &Party) -> Ex {
    let wrong = |reason: String| {
        reject(Rejection::PartyForm {
            batch: b.batch.clone(),
            domain: b.domain.clone(),
            reason,
        })
    };
    match (to, &b.created_by) {
        (Party::Enterprise(u), Party::Enterprise(_)) => entity(s, u).map(|_| ()),
        (Party::Custody(k), Party::Custody(_)) => {
            match s.get::<st::CustodyKey>(&key::custody_key(k))? {
                // It could never receive: no receipt it signs is accepted.
                Some(st::CustodyKey {
                    revoked_at: Some(height),
                    domain,
                    ..
                }) => reject(Rejection::KeyRevoked {
                    key: *k,
                    holder: format!("a custody key for domain {domain}"),
                    height,
                }),
                Some(ck) if ck.domain == b.domain => Ok(()),
                Some(ck) => wrong(format!(
                    "is addressed to custody key {k}, which is bound for domain {}",
                    ck.domain
                )),
                None => reject(Rejection::NotFound {
                    what: "custody key",
                    id: k.to_string(),
                }),
            }
        }
        (Party::Enterprise(u), Party::Custody(_)) => wrong(format!(
            "names its parties by custody keys: address {u} by its custody key in this domain"
        )),
        (Party::Custody(k), Party::Enterprise(_)) => wrong(format!(
            "names its parties by USCC: it cannot be addressed to custody key {k}"
        )),
    }
}

/// What a commission or one output of a transform says of the batch it makes.
struct BatchSpec<'b> {
    name: &'b str,
    domain: &'b str,
    product: &'b Product,
    lot: &'b str,
    quantity: &'b Quantity,
}

/// Creates a batch held entirely by `owner`, its first event the record `origin`.
fn create_batch(
    s: &mut Overlay,
    x: &Exec,
    new: BatchSpec,
    owner: &Party,
    parents: Vec<String>,
) -> Ex {
    if s.get_raw(&key::batch(new.name))?.is_some() {
        return reject(Rejection::AlreadyExists {
            what: "batch",
            id: new.name.to_string(),
        });
    }
    let origin = x.id;
    let amount = amount_of(x, new.name, new.domain, new.quantity)?;
    let mut bs = st::BatchState {
        batch: new.name.to_string(),
        domain: new.domain.to_string(),
        product: new.product.clone(),
        lot: new.lot.to_string(),
        uom: new.quantity.uom.clone(),
        created_amount: new.quantity.amount.clear(),
        created_by: owner.clone(),
        origin,
        parents,
        recalled: None,
        events: 0,
        last_event: origin,
        event_chain: Hash32([0; 32]),
    };
    append_event(s, &mut bs, origin);
    s.put(key::batch(new.name), &bs);
    give(s, new.name, owner, amount)
}

fn batch(s: &Overlay, name: &str) -> Ex<st::BatchState> {
    need(s.get(&key::batch(name))?, "batch", name)
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

/// The amount `q` states for `batch` of `domain`, in the form the policy in force wants:
/// opened where the domain hides quantities (the ledger keeps its commitment), in clear
/// elsewhere. A sealed amount is refused everywhere: validators must see it.
fn amount_of(x: &Exec, batch: &str, domain: &str, q: &Quantity) -> Ex<u64> {
    let hides = (x.c.policy().trace).hides(domain, TraceField::Quantity);
    let refuse = |reason| {
        reject(Rejection::AmountForm {
            batch: batch.to_string(),
            domain: domain.to_string(),
            reason,
        })
    };
    match (&q.amount, hides) {
        (Amount::Opened { value, .. }, true) | (Amount::Clear(value), false) => Ok(*value),
        (Amount::Clear(_), true) => {
            refuse("is hidden by the domain's policy: give it opened (with a salt), not in clear")
        }
        (Amount::Opened { .. }, false) => {
            refuse("is public by the domain's policy: give it in clear")
        }
        (Amount::Sealed(_), _) => refuse("is sealed: validators are given it opened"),
    }
}

/// Moves `q` out of `holder`'s holding of the batch (shipped, consumed or sold), and
/// returns the amount moved.
fn take(s: &mut Overlay, x: &Exec, b: &st::BatchState, holder: &Party, q: &Quantity) -> Ex<u64> {
    same_unit(b, q)?;
    let amount = amount_of(x, &b.batch, &b.domain, q)?;
    let k = key::holding(&b.batch, holder);
    let held: u64 = s.get(&k)?.unwrap_or(0);
    if held < amount {
        return reject(Rejection::Insufficient {
            batch: b.batch.clone(),
            holder: holder.to_string(),
            held,
            wanted: amount,
            uom: b.uom.clone(),
        });
    }
    if held == amount {
        s.delete(k)
    } else {
        s.put(k, &(held - amount))
    }
    Ok(amount)
}

/// Adds `amount` to `holder`'s holding of the batch: created or received.
fn give(s: &mut Overlay, batch: &str, holder: &Party, amount: u64) -> Ex {
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
