//! Fuzz target: genesis files (`Genesis::from_toml`: TOML parsing, then every rule of
//! `GenesisFile::validate`). Asserts: no panic; an accepted genesis has a valid roster
//! (`Roster::problems` empty) and a non-empty validator set with a quorum rule, writes
//! back to TOML that parses to the same genesis with the same hash, and builds a
//! consortium (`xinlian_core::execute::Consortium::new`) whose chain is that hash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xinlian_core::execute::Consortium;
use xinlian_genesis::Genesis;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(g) = Genesis::from_toml(text) else {
        return;
    };
    let roster = g.roster();
    assert!(roster.problems().is_empty(), "{:?}", roster.problems());
    let vals = g.validator_set();
    assert!(!vals.is_empty());
    assert!(vals.is_quorum(vals.total_power()));
    let again = Genesis::from_toml(&g.to_toml()).expect("an accepted genesis re-reads");
    assert_eq!(again, g);
    assert_eq!(again.hash(), g.hash());
    let c = Consortium::new(g.clone());
    assert_eq!(c.chain, g.hash());
});
