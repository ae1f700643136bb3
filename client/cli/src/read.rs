//! Reading the ledger from a node: `status`, `block`, `enterprise`, `batch`, and
//! `record` (verified against genesis when it is final and --genesis is given).

use xinlian_client::api::{BatchView, EnterpriseView, RecordStatus, RecordView};
use xinlian_client::checks::check_stateless;
use xinlian_client::http::NodeClient;
use xinlian_client::record::EncodedRecord;

use crate::verify::{describe, verify_online};
use crate::{Cli, Failure, load_genesis, parse_record_id, print};

/// `xinlian record`: verified when final and --genesis is given; else its signature
/// checked and its status as the node reports it.
pub(crate) fn record(cli: &Cli, node: &NodeClient, id: &str, wait: bool) -> Result<(), Failure> {
    let id = parse_record_id(id)?;
    let v = node.record(&id, if wait { 30_000 } else { 0 })?;
    if v.record.id() != id {
        return Err(Failure::Invalid(format!(
            "node returned record {} for {id}",
            v.record.id()
        )));
    }
    if let (RecordStatus::Final, Some(g)) = (v.status, load_genesis(cli.genesis.as_deref())?) {
        let (verified, _) = verify_online(cli, node, g, &id)?;
        print(cli.json, &verified, || describe(&verified));
        return Ok(());
    }
    check_stateless(
        &EncodedRecord::new(v.record.clone()),
        &v.record.envelope.chain,
    )
    .map_err(|e| Failure::Invalid(format!("record {id} fails verification: {e}")))?;
    print(cli.json, &v, || record_text(&v));
    Ok(())
}

fn record_text(v: &RecordView) -> String {
    let status = match (v.status, v.height) {
        (RecordStatus::Final, Some(h)) => format!(
            "final at height {h}, ledger index {} (not verified: give --genesis)",
            v.ledger_index.unwrap_or_default()
        ),
        _ => "pending".into(),
    };
    format!(
        "{} {}: {status}\nsigner {} (signature valid under ZIP-215)\n{}",
        v.kind.name(),
        v.id,
        v.record.envelope.signer,
        serde_json::to_string_pretty(&v.record.envelope.body).expect("serialises")
    )
}

pub(crate) fn status(cli: &Cli, node: &NodeClient) -> Result<(), Failure> {
    let s = node.status()?;
    print(cli.json, &s, || {
        format!(
            "chain {} ({})\nheight {}  tip {}\nledger {} records, root {}\nnode {}{}",
            s.chain_id,
            s.genesis_hash,
            s.height,
            s.tip_hash,
            s.ledger_size,
            s.ledger_root,
            s.node,
            if s.validator { " (validator)" } else { "" }
        )
    });
    Ok(())
}

pub(crate) fn block(cli: &Cli, node: &NodeClient, height: u64) -> Result<(), Failure> {
    let b = node.block(height)?;
    print(cli.json, &b, || {
        format!(
            "block {} {}\nparent {}\n{} records, {} precommits",
            b.header.height,
            b.hash,
            b.header.parent,
            b.records.len(),
            b.certificate.signatures.len()
        )
    });
    Ok(())
}

pub(crate) fn enterprise(cli: &Cli, node: &NodeClient, uscc: &str) -> Result<(), Failure> {
    let e = node.enterprise(uscc)?;
    print(cli.json, &e, || enterprise_text(&e));
    Ok(())
}

fn enterprise_text(e: &EnterpriseView) -> String {
    let mut out = format!(
        "{} {}\nregistered by {} at height {}\n",
        e.entity.uscc, e.entity.name, e.entity.registered_by, e.entity.registered_at
    );
    let g = &e.grade;
    out += &format!(
        "grade {} (score {}, rules version {}, as of {}; `xinlian credit` verifies it)\n",
        g.grade, g.score, g.rules_version, g.as_of
    );
    match &e.profile {
        Some(p) => {
            out += &format!(
                "commitments {}: pending {}, fulfilled {}, not verifiable {}, breached {}/{}/{} (minor/general/serious), repaired {}\n",
                p.commitments,
                p.pending,
                p.fulfilled,
                p.not_verifiable,
                p.breached_minor,
                p.breached_general,
                p.breached_serious,
                p.repaired
            );
        }
        None => out += "commitments: only those disclosed to this reader are listed\n",
    }
    for l in &e.lists {
        out += &format!("on list {:?} since {} ({})\n", l.list, l.date, l.domain);
    }
    for c in &e.commitments {
        out += &format!(
            "  {:?} {:?} → {:?}  ({})\n",
            c.kind, c.accepting_agency, c.status, c.id
        );
    }
    out.trim_end().to_string()
}

pub(crate) fn batch(cli: &Cli, node: &NodeClient, batch: &str) -> Result<(), Failure> {
    let b = node.batch(batch)?;
    print(cli.json, &b, || batch_text(&b));
    Ok(())
}

fn batch_text(b: &BatchView) -> String {
    let s = &b.batch;
    let mut out = format!(
        "{} — {} (lot {}, {} made by {})\n",
        s.batch,
        s.product.name,
        s.lot,
        crate::report_text::amount(s.created_amount, &s.uom),
        s.created_by
    );
    if let Some(r) = s.recalled {
        out += &format!("RECALLED by record {r}\n");
    }
    for h in &b.holders {
        out += &format!(
            "  held by {}: {}\n",
            h.holder,
            crate::report_text::amount(h.amount, &s.uom)
        );
    }
    for t in &b.in_transit {
        out += &format!(
            "  in transit {} → {}: {}\n",
            t.from,
            t.to,
            crate::report_text::amount(t.amount, &s.uom)
        );
    }
    out += &format!(
        "{} events; made from {:?}; used in {:?}",
        b.events.len(),
        s.parents,
        b.children
    );
    out
}
