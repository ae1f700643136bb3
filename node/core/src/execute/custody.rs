//! Traceability: batches are commissioned or made by transforms, shipped, received,
//! inspected, recalled and sold. Each event extends its batch's event chain; custody
//! moves through holdings, one amount per (batch, holder), and passes on receipt.

use xinlian_client::hidden::Amount;
use xinlian_client::ids::Uscc;
use xinlian_client::record::{
    Commission, Inspect, Product, Quantity, Recall, Receive, RecordId, Sell, Ship, Transform,
};
use xinlian_client::state::{self as st, key};
use xinlian_genesis::{Hash32, TraceField};

use super::{Ex, Exec, Found, Rejection, entity, need, reject};
use crate::overlay::Overlay;

pub(super) fn commission(s: &mut Overlay, x: &Exec, b: &Commission) -> Ex<Vec<Uscc>> {
    x.authorise(Found::Nothing)?;
    let producer = x.enterprise();
    let new = BatchSpec {
        name: &b.batch,
        domain: &b.domain,
        product: &b.product,
        lot: &b.lot,
        quantity: &b.quantity,
    };
    create_batch(s, x, new, &producer, Vec::new())?;
    Ok(vec![producer])
}

pub(super) fn ship(s: &mut Overlay, x: &Exec, b: &Ship) -> Ex<Vec<Uscc>> {
    x.authorise(Found::Nothing)?;
    let sender = x.enterprise();
    let mut bs = batch(s, &b.batch)?;
    entity(s, &b.to)?;
    if b.to == sender {
        return reject(Rejection::WrongState {
            what: "shipment",
            reason: "sender and receiver are the same enterprise".into(),
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
    Ok(vec![sender, b.to.clone()])
}

pub(super) fn receive(s: &mut Overlay, x: &Exec, b: &Receive) -> Ex<Vec<Uscc>> {
    let mut sh: st::Shipment = need(s.get(&key::shipment(&b.shipment))?, "shipment", b.shipment)?;
    x.authorise(Found::Enterprise(&sh.to))?;
    let receiver = x.enterprise();
    if let Some(r) = sh.received {
        return reject(Rejection::WrongState {
            what: "shipment",
            reason: format!("already received by record {r}"),
        });
    }
    let mut bs = batch(s, &sh.batch)?;
    give(s, &sh.batch, &receiver, sh.amount)?;
    sh.received = Some(x.id);
    s.put(key::shipment(&b.shipment), &sh);
    append_event(s, &mut bs, x.id);
    s.put(key::batch(&sh.batch), &bs);
    Ok(vec![receiver, sh.from])
}

pub(super) fn transform(s: &mut Overlay, x: &Exec, b: &Transform) -> Ex<Vec<Uscc>> {
    x.authorise(Found::Nothing)?;
    let maker = x.enterprise();
    let mut parents = Vec::new();
    for input in &b.inputs {
        let mut bs = batch(s, &input.batch)?;
        take(s, x, &bs, &maker, &input.quantity)?;
        append_event(s, &mut bs, x.id);
        s.put(key::batch(&input.batch), &bs);
        parents.push(input.batch.clone());
    }
    for o in &b.outputs {
        let new = BatchSpec {
            name: &o.batch,
            domain: &o.domain,
            product: &o.product,
            lot: &o.lot,
            quantity: &o.quantity,
        };
        create_batch(s, x, new, &maker, parents.clone())?;
        for p in &parents {
            s.put(key::downstream(p, &o.batch), &());
        }
    }
    Ok(vec![maker])
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
    Ok(vec![bs.created_by.clone()])
}

pub(super) fn sell(s: &mut Overlay, x: &Exec, b: &Sell) -> Ex<Vec<Uscc>> {
    x.authorise(Found::Nothing)?;
    let seller = x.enterprise();
    let mut bs = batch(s, &b.batch)?;
    take(s, x, &bs, &seller, &b.quantity)?;
    append_event(s, &mut bs, x.id);
    s.put(key::batch(&b.batch), &bs);
    Ok(vec![seller])
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
    owner: &Uscc,
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
fn take(s: &mut Overlay, x: &Exec, b: &st::BatchState, holder: &Uscc, q: &Quantity) -> Ex<u64> {
    same_unit(b, q)?;
    let amount = amount_of(x, &b.batch, &b.domain, q)?;
    let k = key::holding(&b.batch, holder);
    let held: u64 = s.get(&k)?.unwrap_or(0);
    if held < amount {
        return reject(Rejection::Insufficient {
            batch: b.batch.clone(),
            holder: holder.clone(),
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
