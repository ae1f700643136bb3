//! What an inspector reads at a terminal, rendered from a verified [`Provenance`]: the
//! upstream tree with each batch's custody timeline, and the recall reach as text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use xinlian_client::report::recall_reach;

use xinlian_client::party::Party;
use xinlian_client::proof::SignerAuthority;
use xinlian_client::provenance::{Provenance, VerifiedBatch, VerifiedEvent};
use xinlian_client::record::{Body, InspectionResult, RecordId, SaleKind};

fn short(id: &RecordId) -> String {
    id.to_string()[..12].to_string()
}

fn signer(e: &VerifiedEvent) -> String {
    match &e.signer {
        SignerAuthority::Member { id, .. } => format!("member {id}"),
        SignerAuthority::Enterprise { uscc, .. } => uscc.to_string(),
        SignerAuthority::Custody { .. } => format!("custody:{}", e.record.envelope.signer),
    }
}

/// One line for an event of batch `b`, as seen from that batch.
pub fn event_line(b: &VerifiedBatch, e: &VerifiedEvent) -> String {
    let uom = &b.state.uom;
    let who = signer(e);
    let what = match &e.record.envelope.body {
        Body::Commission(c) => format!(
            "{} {} {uom} commissioned by {who} at {}",
            c.time, c.quantity.amount, c.origin
        ),
        Body::Ship(s) => format!(
            "{} {who} shipped {} {uom} to {} ({} → {})",
            s.time, s.quantity.amount, s.to, s.from_location, s.to_location
        ),
        Body::Receive(r) => format!(
            "{} {who} acknowledged receipt at {} (shipment {})",
            r.time,
            r.location,
            short(&r.shipment)
        ),
        Body::Transform(t) => {
            if e.id == b.state.origin {
                let ins: Vec<String> = t
                    .inputs
                    .iter()
                    .map(|i| format!("{} {} {}", i.batch, i.quantity.amount, i.quantity.uom))
                    .collect();
                format!(
                    "{} made by {who} at {} from {}",
                    t.time,
                    t.location,
                    ins.join(", ")
                )
            } else {
                let amount = t
                    .inputs
                    .iter()
                    .find(|i| i.batch == b.state.batch)
                    .map_or_else(|| "?".to_string(), |i| i.quantity.amount.to_string());
                let outs: Vec<&str> = t.outputs.iter().map(|o| o.batch.as_str()).collect();
                format!(
                    "{} {who} used {amount} {uom} to make {}",
                    t.time,
                    outs.join(", ")
                )
            }
        }
        Body::Inspect(i) => format!(
            "{} inspected by {who}: {} against {} at {}",
            i.time,
            match i.result {
                InspectionResult::Pass => "PASS",
                InspectionResult::Fail => "FAIL",
            },
            i.standard,
            i.location
        ),
        Body::Recall(r) => format!("{} RECALLED by {who}: {}", r.time, r.reason),
        Body::Sell(s) => format!(
            "{} {who} {} {} {uom} at {}",
            s.time,
            match s.kind {
                SaleKind::RetailSold => "sold",
                SaleKind::Dispensed => "dispensed",
            },
            s.quantity.amount,
            s.location
        ),
        other => format!("{} by {who}", other.kind().name()),
    };
    format!("{what}  [{}]", short(&e.id))
}

/// `amount uom`, or what is said where the amount is withheld from this reader.
pub(crate) fn amount(a: Option<u64>, uom: &str) -> String {
    match a {
        Some(a) => format!("{a} {uom}"),
        None => "an amount withheld".into(),
    }
}

fn holdings_line(b: &VerifiedBatch) -> String {
    let uom = &b.state.uom;
    let mut parts: Vec<String> = b
        .holders
        .iter()
        .map(|(u, a)| match a {
            Some(a) => format!("{u} holds {a} {uom}"),
            None => format!("{u} has held it"),
        })
        .collect();
    parts.extend(
        b.in_transit
            .iter()
            .map(|t| format!("{} in transit {} → {}", amount(t.amount, uom), t.from, t.to)),
    );
    if let Some(sold) = b.sold.filter(|n| *n > 0) {
        parts.push(format!("{sold} {uom} sold or dispensed"));
    }
    if let Some(used) = b.consumed.filter(|n| *n > 0) {
        parts.push(format!("{used} {uom} used in processing"));
    }
    if b.amounts_withheld {
        parts.push("amounts withheld by the domain's policy".into());
    }
    if parts.is_empty() {
        "nothing left".into()
    } else {
        parts.join("; ")
    }
}

fn header_lines(p: &Provenance, what: &str, out: &mut String) {
    let at = if p.final_from == p.final_to {
        format!("header {}", p.final_to)
    } else {
        format!("headers {}–{}", p.final_from, p.final_to)
    };
    let _ = writeln!(
        out,
        "{what} of {} — {} batches, {} events, each verified against finalized {at}",
        p.root,
        p.batches.len(),
        p.all_events().len()
    );
    if p.is_complete() {
        let _ = writeln!(
            out,
            "complete: every batch's events match the count and chain its state commits to"
        );
    } else {
        let _ = writeln!(
            out,
            "INCOMPLETE: {} batches reached but not verified: {}",
            p.missing.len(),
            p.missing.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
}

/// A batch's heading line, the same in a trace and in a recall reach.
fn title(
    batch: &str,
    product: &str,
    lot: &str,
    made: Option<u64>,
    uom: &str,
    maker: &Party,
    recalled: bool,
) -> String {
    let flag = if recalled { " RECALLED" } else { "" };
    let made = amount(made, uom);
    format!("{batch} — {product} (lot {lot}, {made}, made by {maker}){flag}")
}

/// The upstream tree from the root, each batch with its timeline and holdings.
pub fn trace_text(p: &Provenance) -> String {
    let mut out = String::new();
    header_lines(p, "Provenance", &mut out);
    let recalls = p.recalls_affecting(&p.root);
    for (batch, id) in &recalls {
        let _ = writeln!(
            out,
            "RECALL: {} is affected by the recall of {batch} [{}]",
            p.root,
            short(id)
        );
    }
    let mut printed = BTreeSet::new();
    tree(p, &p.root, 0, &mut printed, &mut out);
    out.trim_end().to_string()
}

fn tree(
    p: &Provenance,
    name: &str,
    depth: usize,
    printed: &mut BTreeSet<String>,
    out: &mut String,
) {
    let pad = "    ".repeat(depth);
    let Some(b) = p.batches.get(name) else {
        let _ = writeln!(out, "{pad}{name}: not verified (missing from the answer)");
        return;
    };
    let s = &b.state;
    if !printed.insert(name.to_string()) {
        let _ = writeln!(out, "{pad}{name}: (shown above)");
        return;
    }
    let _ = writeln!(
        out,
        "{pad}{}",
        title(
            name,
            &s.product.name,
            &s.lot,
            b.created_amount(),
            &s.uom,
            &s.created_by,
            s.recalled.is_some()
        )
    );
    for e in &b.events {
        let _ = writeln!(out, "{pad}  · {}", event_line(b, e));
    }
    for t in &b.transfers {
        let _ = writeln!(
            out,
            "{pad}  custody: {} → {} {}, shipped {}, {}",
            t.from,
            t.to,
            amount(t.amount, &s.uom),
            t.shipped_at,
            match (&t.received_at, &t.receipt) {
                (Some(at), Some(r)) => format!("acknowledged by the receiver {at} [{}]", short(r)),
                _ => "not yet acknowledged: the sender still answers for it".into(),
            }
        );
    }
    let _ = writeln!(out, "{pad}  now: {}", holdings_line(b));
    if p.direction.up() {
        for parent in &s.parents {
            let _ = writeln!(out, "{pad}  made from:");
            tree(p, parent, depth + 1, printed, out);
        }
    }
}

pub fn recall_reach_text(p: &Provenance) -> String {
    let r = recall_reach(p);
    let mut out = String::new();
    header_lines(p, "Recall reach", &mut out);
    for (batch, id) in &r.recalls {
        let _ = writeln!(out, "RECALL of {batch} [{}]", short(id));
    }
    let (mut held, mut transit) = (BTreeMap::<(Party, String), u64>::new(), 0usize);
    for b in &r.batches {
        let _ = writeln!(
            out,
            "{}",
            title(
                &b.batch,
                &b.product,
                &b.lot,
                b.created_amount,
                &b.uom,
                &b.created_by,
                b.recalled.is_some()
            )
        );
        for (u, a) in &b.holders {
            let _ = writeln!(out, "    held by {u}: {}", amount(*a, &b.uom));
            let total = held.entry((u.clone(), b.uom.clone())).or_default();
            *total = total.saturating_add(a.unwrap_or(0));
        }
        for t in &b.in_transit {
            let _ = writeln!(
                out,
                "    in transit {} → {}: {}",
                t.from,
                t.to,
                amount(t.amount, &b.uom)
            );
            transit += 1;
        }
        if let Some(sold) = b.sold.filter(|n| *n > 0) {
            let _ = writeln!(out, "    sold or dispensed: {sold} {}", b.uom);
        }
        if !b.affected_by.is_empty() && b.recalled.is_none() {
            let by: Vec<&str> = b.affected_by.iter().map(|(x, _)| x.as_str()).collect();
            let _ = writeln!(out, "    AFFECTED by the recall of {}", by.join(", "));
        }
    }
    let holders: BTreeSet<&Party> = held.keys().map(|(u, _)| u).collect();
    let _ = writeln!(
        out,
        "{} batches reached; {} holders to notify; {} shipments in transit",
        r.batches.len(),
        holders.len(),
        transit
    );
    out.trim_end().to_string()
}
