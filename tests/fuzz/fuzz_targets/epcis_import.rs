//! Fuzz target: EPCIS 2.0 documents through `xinlian_client::epcis::import` (what
//! `xinlian epcis import` runs on a file). First byte even: the rest is the document's
//! raw JSON; odd: a script of structural edits to one of the fixture's own exports
//! (`epcis::export` of its verified batches). Options, importer and the shipment
//! look-up (none, the fixture's shipments, or a failing one) come from the input too.
//! Asserts: no panic, and whatever is imported is a set of records that pass every
//! stateless check and the signature rule, signed by the importer's key for this
//! chain, each naming an event of the document.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use xinlian_client::checks::check_stateless;
use xinlian_client::epcis::{ImportOptions, ShipmentLookup, import};
use xinlian_client::record::{Body, EncodedRecord};
use xinlian_client::signer::RecordSigner;
use xinlian_client::api::Transit;
use xinlian_fuzz::chain::{fixture, key};
use xinlian_fuzz::mutate::mutate;
use xinlian_fuzz::seeds::epcis_documents;
use xinlian_genesis::keys::{SigningKey, public_key};

fn bases() -> &'static [Value] {
    static B: OnceLock<Vec<Value>> = OnceLock::new();
    B.get_or_init(epcis_documents)
}

/// The importer's key, derived once (deriving computes its public point).
fn importer_key() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| key(5, 1))
}

/// The fixture's shipments of a batch, all presented as open; or a failing look-up.
struct Lookup {
    fail: bool,
}

impl ShipmentLookup for Lookup {
    fn open_shipments(&self, batch: &str) -> Result<Vec<Transit>, String> {
        if self.fail {
            return Err("the node is unreachable".into());
        }
        let fx = fixture();
        Ok(fx
            .batches
            .get(batch)
            .map(|b| {
                b.transfers
                    .iter()
                    .map(|t| Transit {
                        ship: t.ship,
                        batch: batch.to_string(),
                        from: t.from.clone(),
                        to: t.to.clone(),
                        amount: t.amount,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    let mut u = Unstructured::new(data);
    let (Ok(mode), Ok(flags)) = (u.arbitrary::<u8>(), u.arbitrary::<u8>()) else {
        return;
    };
    let doc = if mode % 2 == 0 {
        match serde_json::from_slice::<Value>(u.take_rest()) {
            Ok(d) => d,
            Err(_) => return,
        }
    } else {
        let Ok(i) = u.choose_index(bases().len()) else {
            return;
        };
        mutate(&bases()[i], &mut u)
    };
    // Half the inputs under a policy that hides food quantities (amounts opened).
    let trace = match flags & 16 != 0 {
        true => xinlian_genesis::TracePolicy::hiding_quantities("food"),
        false => xinlian_genesis::TracePolicy::default(),
    };
    let opts = ImportOptions {
        domain: (flags & 1 != 0).then(|| "food".to_string()),
        parties: BTreeMap::new(),
        trace,
    };
    let signer = RecordSigner {
        key: importer_key().clone(),
        chain: fx.chain(),
    };
    let importer = fx.batches["flour-1"].transfers[0].to.clone();
    let importer = (flags & 2 != 0).then_some(&importer);
    let lookup = Lookup {
        fail: flags & 4 != 0,
    };
    let lookup: Option<&dyn ShipmentLookup> = (flags & 8 != 0).then_some(&lookup);
    let events = doc
        .pointer("/epcisBody/eventList")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if let Ok(records) = import(&doc, &opts, &signer, importer, lookup) {
        for (index, rec) in records {
            assert!(index < events, "record of event {index} of {events}");
            assert_eq!(rec.envelope.signer, public_key(&signer.key));
            assert!(!matches!(rec.envelope.body, Body::RegisterEntity(_)));
            let enc = EncodedRecord::new(rec);
            if let Err(e) = check_stateless(&enc, &fx.chain()) {
                panic!(
                    "imported record fails the stateless checks: {e}: {:?}",
                    enc.record()
                );
            }
        }
    }
});
