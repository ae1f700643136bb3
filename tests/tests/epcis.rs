//! EPCIS 2.0 in and out. The standard's worked examples (read in place from
//! `shared/vectors/epcis/`) are refused whole, each offending event and field named;
//! the same examples, with what the ledger cannot represent taken out and their parties
//! mapped to registered enterprises, import into records the ledger accepts; a verified
//! export imports back to the very same records; a document the node would refuse
//! in part is not submitted at all; and a dry run gives the node nothing.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};
use xinlian_client::epcis::{self, ImportError, ImportOptions};
use xinlian_client::http::{NodeClient, fetch_provenance};
use xinlian_client::ids::Uscc;
use xinlian_client::proof::LightClient;
use xinlian_client::provenance::Direction;
use xinlian_client::record::{Body, SignedRecord};
use xinlian_client::signer::RecordSigner;
use xinlian_genesis::keys::{self, write_pem};
use xinlian_genesis::scaffold::genesis_path;
use xinlian_tests::register_enterprise;

const CLI: &str = env!("CARGO_BIN_EXE_xinlian-under-test");

/// The worked examples' folder, or `None` (skipping, outside CI) when absent.
fn vectors() -> Option<PathBuf> {
    xinlian_client::vectors::dir().map(|d| d.join("epcis"))
}

fn example(name: &str) -> Value {
    let path = vectors().expect("checked by the caller").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn throwaway_signer() -> RecordSigner {
    RecordSigner {
        key: keys::generate().unwrap(),
        chain: xinlian_genesis::Hash32([7; 32]),
    }
}

fn refused(doc: &Value, opts: &ImportOptions) -> Vec<ImportError> {
    epcis::import(doc, opts, &throwaway_signer(), None, None)
        .expect_err("the document must be refused whole")
}

/// Asserts that an error names `field` (exactly, or as its prefix) in event `event`.
fn names(errors: &[ImportError], event: usize, field: &str) {
    assert!(
        errors
            .iter()
            .any(|e| e.event == Some(event) && e.field.starts_with(field)),
        "no error for event {event} field {field} among:\n{}",
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_standards_worked_examples_are_refused_whole_naming_each_event_and_field() {
    if vectors().is_none() {
        return;
    }
    let opts = ImportOptions::default();
    // 9.6.1: shipping and receiving of serialised items between parties the document
    // does not name; business transactions and a vendor extension.
    let e = refused(&example("Example_9.6.1-ObjectEvent.jsonld"), &opts);
    names(&e, 0, "destinationList");
    names(&e, 0, "bizTransactionList");
    names(&e, 1, "readPoint");
    names(&e, 1, "bizTransactionList");
    names(&e, 1, "example:myField");
    assert!(
        e.iter().all(|x| x.event_id.is_some()),
        "errors carry the eventID"
    );
    // 9.6.2: parties by SGLN that no enterprise on the ledger is.
    let e = refused(&example("Example_9.6.2-ObjectEvent.jsonld"), &opts);
    names(&e, 0, "sourceList[0]");
    names(&e, 0, "destinationList[0]");
    names(&e, 0, "readPoint");
    names(&e, 0, "example:myField");
    // 9.6.3: an observed aggregation, a class pattern, a fractional quantity.
    let e = refused(&example("Example_9.6.3-AggregationEvent.jsonld"), &opts);
    names(&e, 0, "action");
    names(&e, 0, "childQuantityList[0].epcClass");
    names(&e, 0, "childQuantityList[1].quantity");
    names(&e, 0, "example:myField");
    // 9.6.4: a class pattern among the inputs, master data the ledger does not keep,
    // and none of what it needs.
    let e = refused(&example("Example_9.6.4-TransformationEvent.jsonld"), &opts);
    names(&e, 0, "inputQuantityList[2].epcClass");
    names(&e, 0, "ilmd.example:bestBeforeDate");
    names(&e, 0, "ilmd.xinlian:productName");
    names(&e, 0, "ilmd.xinlian:domain");
    names(&e, 0, "example:myField");
}

#[test]
fn malformed_documents_are_refused_with_the_field_named() {
    let opts = ImportOptions::default();
    let e = refused(&json!([1, 2]), &opts);
    assert_eq!(e[0].field, "$");
    let e = refused(
        &json!({"type": "EPCISDocument", "schemaVersion": "1.2"}),
        &opts,
    );
    assert!(e.iter().any(|x| x.field == "schemaVersion"));
    assert!(e.iter().any(|x| x.field == "epcisBody.eventList"));
    let doc = json!({"type": "EPCISDocument", "schemaVersion": "2.0",
        "epcisBody": {"eventList": [{"type": "AssociationEvent"}, "text"]}});
    let e = refused(&doc, &opts);
    names(&e, 0, "type");
    names(&e, 1, "$");
}

fn strip_extensions(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with("example:"));
            m.values_mut().for_each(strip_extensions);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_extensions),
        _ => {}
    }
}

/// The worked examples adapted as a user would: extensions and business transactions
/// taken out, patterns and fractions replaced, parties mapped, packing instead of an
/// observed aggregation.
fn adapted(farm: &Uscc) -> (Value, Value, Value, Value) {
    let mut commission = example("Example_9.6.4-TransformationEvent.jsonld");
    strip_extensions(&mut commission);
    let t = commission["epcisBody"]["eventList"][0].clone();
    // The transformation's inputs, commissioned first by the farm.
    let mut inputs = t["inputQuantityList"].as_array().unwrap().clone();
    inputs.truncate(2);
    commission["epcisBody"]["eventList"] = json!([{
        "type": "ObjectEvent", "action": "ADD", "bizStep": "commissioning",
        "eventTime": "2013-06-04T10:00:00.000+02:00", "eventTimeZoneOffset": "+02:00",
        "epcList": t["inputEPCList"], "quantityList": inputs,
        "readPoint": t["readPoint"],
        "ilmd": {"cbvmda:lotNumber": "L-2013-06", "xinlian:productName": "wheat flour"},
    }]);
    // 9.6.2, shipped from the farm to the plant and received there.
    let mut receive = example("Example_9.6.2-ObjectEvent.jsonld");
    strip_extensions(&mut receive);
    let mut r = receive["epcisBody"]["eventList"][0].clone();
    r.as_object_mut().unwrap().remove("readPoint");
    r["quantityList"][0]["epcClass"] = inputs[0]["epcClass"].clone();
    r["quantityList"][0]["quantity"] = json!(10);
    let mut s = r.clone();
    s["bizStep"] = json!("shipping");
    s["disposition"] = json!("in_transit");
    s["eventTime"] = json!("2013-06-08T10:00:00.000Z");
    s.as_object_mut().unwrap().remove("bizLocation");
    s["readPoint"] = t["readPoint"].clone();
    s["sourceList"] =
        json!([{"type": "owning_party", "source": format!("urn:xinlian:uscc:{farm}")}]);
    let ship = json!({"type": "EPCISDocument", "schemaVersion": "2.0",
        "epcisBody": {"eventList": [s]}});
    receive["epcisBody"]["eventList"] = json!([r]);
    // 9.6.4 with its pattern input gone and the master data the ledger keeps.
    let mut transform = example("Example_9.6.4-TransformationEvent.jsonld");
    strip_extensions(&mut transform);
    let ev = &mut transform["epcisBody"]["eventList"][0];
    ev["inputQuantityList"] = json!([inputs[0]]);
    ev["inputQuantityList"][0]["quantity"] = json!(10);
    ev["inputEPCList"] = json!([]);
    ev["readPoint"] = receive["epcisBody"]["eventList"][0]["bizLocation"].clone();
    ev["ilmd"] = json!({"cbvmda:lotNumber": "XYZ", "xinlian:productName": "bread"});
    // 9.6.3 as packing: the four loaves into the pallet.
    let mut pack = example("Example_9.6.3-AggregationEvent.jsonld");
    strip_extensions(&mut pack);
    let a = &mut pack["epcisBody"]["eventList"][0];
    a["action"] = json!("ADD");
    a["bizStep"] = json!("packing");
    a["eventTime"] = json!("2013-11-01T09:00:00.000+01:00");
    a.as_object_mut().unwrap().remove("readPoint");
    a["childEPCs"] = transform["epcisBody"]["eventList"][0]["outputEPCList"].clone();
    a.as_object_mut().unwrap().remove("childQuantityList");
    a["bizLocation"] = ev_location(&transform);
    (
        commission,
        json!({"ship": ship, "receive": receive}),
        transform,
        pack,
    )
}

fn ev_location(doc: &Value) -> Value {
    doc["epcisBody"]["eventList"][0]["readPoint"].clone()
}

fn import_and_submit(
    node: &NodeClient,
    doc: &Value,
    opts: &ImportOptions,
    signer: &RecordSigner,
    me: &Uscc,
) -> anyhow::Result<Vec<SignedRecord>> {
    let me = xinlian_client::party::Party::Enterprise(me.clone());
    let recs: Vec<SignedRecord> = epcis::import(doc, opts, signer, Some(&me), Some(node))
        .map_err(|e| {
            anyhow::anyhow!(
                "{}",
                e.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })?
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let checked = node.check_records(&recs)?;
    for r in &checked.results {
        anyhow::ensure!(r.code.is_none(), "{:?}: {:?}", r.code, r.message);
    }
    for r in &recs {
        node.submit(r)?;
    }
    let last = node.record(&recs.last().unwrap().id(), 10_000)?;
    anyhow::ensure!(last.height.is_some(), "not final");
    Ok(recs)
}

#[test]
fn adapted_examples_import_and_a_verified_export_imports_back_to_the_same_records()
-> anyhow::Result<()> {
    if vectors().is_none() {
        return Ok(());
    }
    let c = xinlian_tests::consortium!()?;
    let node = c.start()?;
    let farm_u = Uscc::with_check("91310117MA1G0A1B2")?;
    let plant_u = Uscc::with_check("91310115MA1H0C3D4")?;
    let (farm, _) = register_enterprise(&c, &node.client, farm_u.clone(), keys::generate()?)?;
    let (plant, _) = register_enterprise(&c, &node.client, plant_u.clone(), keys::generate()?)?;
    let (commission, moves, transform, pack) = adapted(&farm_u);
    let mut opts = ImportOptions {
        domain: Some("food".into()),
        ..Default::default()
    };
    opts.parties
        .insert("urn:epc:id:sgln:0614141.00001.0".into(), plant_u.clone());
    opts.parties
        .insert("urn:epc:id:sgln:4012345.00001.0".into(), farm_u.clone());

    let made = import_and_submit(&node.client, &commission, &opts, &farm, &farm_u)?;
    assert_eq!(made.len(), 4, "2 serialised items and 2 quantity classes");
    assert!(
        made.iter()
            .all(|r| matches!(r.envelope.body, Body::Commission(_)))
    );
    import_and_submit(&node.client, &moves["ship"], &opts, &farm, &farm_u)?;
    // The receipt's shipment is found on the ledger (no link in the document).
    import_and_submit(&node.client, &moves["receive"], &opts, &plant, &plant_u)?;
    let t = import_and_submit(&node.client, &transform, &opts, &plant, &plant_u)?;
    let Body::Transform(tb) = &t[0].envelope.body else {
        panic!("a transform")
    };
    assert_eq!(tb.outputs.len(), 4);
    let p = import_and_submit(&node.client, &pack, &opts, &plant, &plant_u)?;
    let pallet = "urn:epc:id:sscc:0614141.1234567890";
    let Body::Transform(pb) = &p[0].envelope.body else {
        panic!("packing is a transform")
    };
    assert_eq!(pb.outputs[0].batch, pallet);

    // The pallet's whole verified provenance, exported, imports back to the same bodies.
    let mut lc = LightClient::new(c.genesis.clone());
    let (answer, _) = fetch_provenance(&node.client, &mut lc, pallet, Direction::Upstream, None)?;
    assert!(answer.is_complete());
    let batches: Vec<_> = answer.batches.values().collect();
    let doc = epcis::export(
        &batches,
        xinlian_client::when::EventTime::parse("2026-11-29T12:00:00+08:00").unwrap(),
    );
    let ledger: Vec<Body> = answer
        .all_events()
        .iter()
        .map(|e| e.record.envelope.body.clone())
        .collect();
    let back: Vec<Body> = epcis::import(&doc, &ImportOptions::default(), &farm, None, None)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .into_iter()
        .map(|(_, r)| r.envelope.body)
        .collect();
    assert_eq!(
        back, ledger,
        "export then import gives the ledger's own records"
    );
    node.stop()?;
    Ok(())
}

#[test]
fn a_document_the_node_would_refuse_in_part_is_not_submitted_at_all() -> anyhow::Result<()> {
    let c = xinlian_tests::consortium!()?;
    let node = c.start()?;
    let farm_u = Uscc::with_check("91310117MA1G0A1B2")?;
    let key = keys::generate()?;
    let key_file = c.path().join("farm.pem");
    write_pem(&key_file, &key)?;
    register_enterprise(&c, &node.client, farm_u.clone(), key)?;
    let other = Uscc::with_check("91310115MA1H0C3D4")?;
    // Commission 100 kg, then ship 500 kg of it to an enterprise that is not registered.
    let doc = json!({"type": "EPCISDocument", "schemaVersion": "2.0", "epcisBody": {"eventList": [
        {"type": "ObjectEvent", "action": "ADD", "bizStep": "commissioning",
         "eventTime": "2026-11-01T08:00:00+08:00", "eventTimeZoneOffset": "+08:00",
         "quantityList": [{"epcClass": "urn:xinlian:batch:rice-1", "quantity": 100, "uom": "KGM"}],
         "readPoint": {"id": "urn:test:field"},
         "ilmd": {"cbvmda:lotNumber": "L1", "xinlian:productName": "rice", "xinlian:domain": "food"}},
        {"type": "ObjectEvent", "action": "OBSERVE", "bizStep": "shipping",
         "eventTime": "2026-11-02T08:00:00+08:00", "eventTimeZoneOffset": "+08:00",
         "quantityList": [{"epcClass": "urn:xinlian:batch:rice-1", "quantity": 500, "uom": "KGM"}],
         "readPoint": {"id": "urn:test:field"},
         "destinationList": [{"type": "owning_party", "destination": format!("urn:xinlian:uscc:{other}")},
                             {"type": "location", "destination": "urn:test:plant"}]}
    ]}});
    let file = c.path().join("doc.jsonld");
    std::fs::write(&file, doc.to_string())?;
    let before = node.client.status()?.ledger_size;
    let out = Command::new(CLI)
        .args(["epcis", "import"])
        .arg(&file)
        .arg("--key")
        .arg(&key_file)
        .env("XINLIAN_NODE", node.client.base_url())
        .env("XINLIAN_GENESIS", genesis_path(c.path()))
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("event 1") && said.contains("not_found"),
        "{said}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was submitted"));
    // Let a block pass: the commissioning must not have landed either.
    register_enterprise(&c, &node.client, other, keys::generate()?)?;
    assert_eq!(node.client.status()?.ledger_size, before + 1);
    assert!(node.client.batch("rice-1").is_err());
    node.stop()?;
    Ok(())
}

/// `epcis import --dry-run` checks here only: run with no node at all (an address
/// nothing listens on), it maps and checks the document and succeeds, so no signed
/// record — which a node could submit later — was handed to anyone.
#[test]
fn a_dry_run_hands_the_node_no_signed_record() -> anyhow::Result<()> {
    let c = xinlian_tests::consortium!()?;
    let key_file = c.path().join("farm.pem");
    write_pem(&key_file, &keys::generate()?)?;
    let to = Uscc::with_check("91310115MA1H0C3D4")?;
    let doc = json!({"type": "EPCISDocument", "schemaVersion": "2.0", "epcisBody": {"eventList": [
        {"type": "ObjectEvent", "action": "ADD", "bizStep": "commissioning",
         "eventTime": "2026-11-01T08:00:00+08:00", "eventTimeZoneOffset": "+08:00",
         "quantityList": [{"epcClass": "urn:xinlian:batch:rice-1", "quantity": 100, "uom": "KGM"}],
         "readPoint": {"id": "urn:test:field"},
         "ilmd": {"cbvmda:lotNumber": "L1", "xinlian:productName": "rice", "xinlian:domain": "food"}},
        {"type": "ObjectEvent", "action": "OBSERVE", "bizStep": "shipping",
         "eventTime": "2026-11-02T08:00:00+08:00", "eventTimeZoneOffset": "+08:00",
         "quantityList": [{"epcClass": "urn:xinlian:batch:rice-1", "quantity": 40, "uom": "KGM"}],
         "readPoint": {"id": "urn:test:field"},
         "destinationList": [{"type": "owning_party", "destination": format!("urn:xinlian:uscc:{to}")},
                             {"type": "location", "destination": "urn:test:plant"}]}
    ]}});
    let file = c.path().join("doc.jsonld");
    std::fs::write(&file, doc.to_string())?;
    let dry = |json: bool| {
        let mut cmd = Command::new(CLI);
        cmd.args(["epcis", "import"])
            .arg(&file)
            .arg("--key")
            .arg(&key_file)
            .arg("--dry-run")
            .env("XINLIAN_NODE", "http://127.0.0.1:9")
            .env("XINLIAN_GENESIS", genesis_path(c.path()));
        if json {
            cmd.arg("--json");
        }
        cmd.output()
    };
    let out = dry(true)?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["checked_by_node"], false);
    assert_eq!(v["events"], 2);
    let kinds: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_object().unwrap().keys().next().unwrap().as_str())
        .collect();
    assert_eq!(kinds, ["commission", "ship"]);
    let text = String::from_utf8(dry(false)?.stdout)?;
    assert!(text.contains("nothing was sent to the node"), "{text}");
    Ok(())
}
