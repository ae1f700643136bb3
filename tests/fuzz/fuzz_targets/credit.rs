//! Fuzz target: the light client fed mutated credit answers. The input picks one of the
//! fixture's genuine answers (each enterprise's complete credit record, and the proof
//! that an unregistered USCC is absent) and a script of structural edits to its JSON.
//! Asserts: no panic, and only the truth is accepted: an accepted answer is the genuine
//! one for its enterprise (every record, the profile, the grade and its reasons), and an
//! absence is accepted only for a USCC that is not registered.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use xinlian_client::credit::{CreditError, CreditProof};
use xinlian_client::proof::LightClient;
use xinlian_fuzz::chain::fixture;
use xinlian_fuzz::mutate::mutate;

fn bases() -> &'static [Value] {
    static B: OnceLock<Vec<Value>> = OnceLock::new();
    B.get_or_init(|| {
        fixture()
            .credits
            .iter()
            .map(|a| serde_json::to_value(a).expect("serialises"))
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    let mut u = Unstructured::new(data);
    let Ok(i) = u.choose_index(bases().len()) else {
        return;
    };
    let doc = mutate(&bases()[i], &mut u);
    let Ok(answer) = serde_json::from_value::<CreditProof>(doc) else {
        return;
    };
    let client = LightClient::new(fx.genesis.clone());
    match client.verify_credit(&answer.uscc, &answer) {
        Ok(v) => {
            let genuine = fx
                .credit_truth
                .iter()
                .find(|t| t.history.uscc == answer.uscc)
                .unwrap_or_else(|| panic!("accepted a credit record of {}, which has none", answer.uscc));
            assert_eq!(&v, genuine, "the accepted answer is the genuine one");
        }
        Err(CreditError::NotRegistered { uscc, .. }) => assert!(
            fx.credit_truth.iter().all(|t| t.history.uscc != uscc),
            "{uscc} accepted as not registered, but it is"
        ),
        Err(_) => {}
    }
});
