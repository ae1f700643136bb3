//! RFC 9162 inclusion and consistency verification against transparency-dev/merkle's
//! public vectors, read in place: every good proof verifies, every broken one fails.

use std::path::Path;

use base64::Engine;
use xinlian_client::genesis::Hash32;
use xinlian_client::merkle::{verify_consistency, verify_inclusion};

fn hash(v: &serde_json::Value) -> Option<Hash32> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str()?)
        .ok()?;
    Some(Hash32(bytes.try_into().ok()?))
}

/// A few equal-size vectors use short "don't care" roots, which only need comparing;
/// SHA-256 of their bytes keeps equality and fits our 32-byte root type.
fn root(v: &serde_json::Value) -> Option<Hash32> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str()?)
        .ok()?;
    Some(match <[u8; 32]>::try_from(bytes.as_slice()) {
        Ok(h) => Hash32(h),
        Err(_) => xinlian_client::genesis::canonical::sha256(&bytes),
    })
}

/// A proof with an entry that is not 32 bytes cannot even be represented: that is a
/// rejection too, just an earlier one.
fn proof(v: &serde_json::Value) -> Option<Vec<Hash32>> {
    v.as_array()
        .map(|a| a.iter().map(hash).collect::<Option<Vec<_>>>())
        .unwrap_or(Some(Vec::new()))
}

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn run(kind: &str, check: impl Fn(&serde_json::Value) -> bool) {
    let Some(dir) = xinlian_client::vectors::dir() else {
        return;
    };
    let (mut good, mut bad) = (0, 0);
    for f in files(&dir.join("rfc9162").join(kind)) {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let want_err = v["wantErr"].as_bool().unwrap();
        let ok = check(&v);
        assert_eq!(ok, !want_err, "{}: {}", f.display(), v["desc"]);
        if want_err { bad += 1 } else { good += 1 }
    }
    assert!(
        good >= 5 && bad >= 20,
        "{kind}: only {good} good and {bad} broken vectors found"
    );
}

#[test]
fn inclusion_vectors() {
    run("inclusion", |v| {
        let (Some(leaf), Some(root), Some(p)) =
            (hash(&v["leafHash"]), hash(&v["root"]), proof(&v["proof"]))
        else {
            return false;
        };
        verify_inclusion(
            &leaf,
            v["leafIdx"].as_u64().unwrap(),
            v["treeSize"].as_u64().unwrap(),
            &p,
            &root,
        )
        .is_ok()
    });
}

#[test]
fn consistency_vectors() {
    run("consistency", |v| {
        let (Some(r1), Some(r2), Some(p)) =
            (root(&v["root1"]), root(&v["root2"]), proof(&v["proof"]))
        else {
            return false;
        };
        verify_consistency(
            v["size1"].as_u64().unwrap(),
            v["size2"].as_u64().unwrap(),
            &r1,
            &r2,
            &p,
        )
        .is_ok()
    });
}
