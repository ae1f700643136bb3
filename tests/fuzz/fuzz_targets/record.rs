//! Fuzz target: records as the API receives them. First byte even: canonical bytes
//! (`EncodedRecord::decode` at the genesis record bound); odd: JSON (`SignedRecord`
//! as the API's JSON bodies carry it). Then the stateless checks and the signature
//! rule (`check_stateless`). Asserts: no panic; canonical bytes re-encode to the input
//! and give the same record and id as `SignedRecord::decode`; the id is the hash of
//! the envelope bytes, which are the record bytes less the signature; a JSON record
//! encodes canonically and decodes back to itself; the checks agree with their parts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xinlian_client::checks::{check_body, check_stateless, check_unsigned};
use xinlian_client::record::{EncodedRecord, SignedRecord};
use xinlian_fuzz::chain::{fixture, genesis};

fn checks(rec: &EncodedRecord) {
    let chain = fixture().chain();
    assert_eq!(rec.id(), rec.record().id());
    assert_eq!(
        rec.envelope_bytes(),
        rec.record().envelope.canonical_bytes()
    );
    assert_eq!(rec.bytes(), rec.record().canonical_bytes());
    let unsigned = check_unsigned(rec.record(), &chain);
    let full = check_stateless(rec, &chain);
    if unsigned.is_err() {
        assert!(
            full.is_err(),
            "a record failing its field checks passes the full ones"
        );
    } else {
        assert!(check_body(&rec.record().envelope.body).is_ok());
        // The full check is the field checks and then the signature.
        assert_eq!(full.is_ok(), rec.verify_signature().is_ok());
    }
    let _ = rec.kind().name();
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let max = genesis().policy.record_bytes_max as usize;
    if mode % 2 == 0 {
        let decoded = EncodedRecord::decode(bytes, max);
        let plain = SignedRecord::decode(bytes, max);
        assert_eq!(decoded.is_ok(), plain.is_ok());
        if let (Ok(rec), Ok(plain)) = (decoded, plain) {
            assert_eq!(rec.bytes(), bytes, "canonical: the bytes are the encoding");
            assert_eq!(*rec.record(), plain);
            checks(&rec);
        }
    } else if let Ok(record) = serde_json::from_slice::<SignedRecord>(bytes) {
        let rec = EncodedRecord::new(record.clone());
        let back = EncodedRecord::decode(rec.bytes(), usize::MAX)
            .expect("a record's own encoding decodes");
        assert_eq!(*back.record(), record);
        checks(&rec);
    }
});
