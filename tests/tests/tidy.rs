//! Tidy: the architecture's invariants that a compiler alone does not keep, checked on
//! every test run (docs/ARCHITECTURE.md names each one and its mechanism):
//! - every Rust file starts with a `//!` header saying what it is for;
//! - the crates' dependency boundaries (read from `cargo metadata`): the core names no
//!   runtime, store, network or HTTP crate and reaches none of them; the client library
//!   compiles without HTTP, CLI or server crates; genesis knows nothing of records;
//!   nothing depends on the node but its binaries, tests and benchmark; only the store
//!   (and the benchmark) names a storage engine;
//! - the core's source names none of those crates either (its `clippy.toml` bans
//!   clocks, sleeps, OS randomness and I/O);
//! - no function outside tests runs past `FN_LINES_MAX` lines without a comment saying
//!   why (`// Long:` in the lines just above it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

const FN_LINES_MAX: usize = 150;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

/// Every `.rs` file git tracks (or would: untracked, not ignored) under the root.
fn rust_files() -> Vec<PathBuf> {
    let out = std::process::Command::new("git")
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "*.rs",
        ])
        .current_dir(root())
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git ls-files failed");
    String::from_utf8(out.stdout)
        .expect("paths are UTF-8")
        .lines()
        .map(|l| root().join(l))
        .filter(|p| p.exists())
        .collect()
}

#[test]
fn every_rust_file_starts_with_a_module_header() {
    let missing: Vec<String> = rust_files()
        .into_iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|p| p.strip_prefix(root()).unwrap_or(&p).display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "these files lack a `//!` header saying what they are for:\n  {}",
        missing.join("\n  ")
    );
}

struct Metadata {
    /// Package name → its direct normal (non-dev, non-build) dependencies.
    direct: BTreeMap<String, BTreeSet<String>>,
}

/// What `cargo ARGS` prints, run in the workspace root.
fn cargo(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn metadata() -> Metadata {
    let out = cargo(&["metadata", "--format-version", "1", "--locked"]);
    let v: Value = serde_json::from_slice(&out).expect("cargo metadata prints JSON");
    let mut direct = BTreeMap::new();
    for p in v["packages"].as_array().expect("packages") {
        let name = p["name"].as_str().expect("name").to_string();
        let deps: BTreeSet<String> = p["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null())
            .map(|d| d["name"].as_str().expect("dep name").to_string())
            .collect();
        if p["source"].is_null() {
            direct.insert(name, deps);
        }
    }
    Metadata { direct }
}

impl Metadata {
    /// Every package `name` reaches through normal dependencies, with the features
    /// it is built with when built alone (`cargo tree -p`, not the workspace's
    /// unified features), itself excluded.
    fn reaches(&self, name: &str) -> BTreeSet<String> {
        let out = cargo(&[
            "tree", "--locked", "-e", "normal", "--prefix", "none", "--format", "{p}", "-p", name,
        ]);
        String::from_utf8_lossy(&out)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| *n != name)
            .map(str::to_string)
            .collect()
    }

    fn direct(&self, name: &str) -> &BTreeSet<String> {
        self.direct
            .get(name)
            .unwrap_or_else(|| panic!("package {name} is not in the workspace"))
    }
}

/// Crates that mean I/O, a runtime, a store, a network or HTTP.
#[rustfmt::skip]
const IO_CRATES: &[&str] = &[
    "tokio", "sled", "redb", "fjall", "rocksdb", "axum", "hyper", "tower", "ureq", "reqwest",
    "libp2p", "libp2p-swarm", "libp2p-tcp", "libp2p-gossipsub", "rand", "getrandom", "clap",
    "tracing-subscriber",
];

/// Storage engines: only `xinlian-store` may name one.
const STORAGE_ENGINES: &[&str] = &["sled", "redb", "fjall", "rocksdb", "heed", "lmdb"];

/// Of those, the ones the core may reach through a dependency: Malachite's
/// core-consensus crate depends on tokio, and genesis and libp2p-identity (peer ids)
/// on getrandom and rand. The core's own code uses none of them, which the source scan
/// below and `node/core/clippy.toml` check.
const REACHED_BY_CORE_THROUGH_DEPENDENCIES: &[&str] = &["tokio", "getrandom", "rand"];

fn forbidden_in<'a>(deps: impl IntoIterator<Item = &'a String>, banned: &[&str]) -> Vec<String> {
    deps.into_iter()
        .filter(|d| banned.contains(&d.as_str()))
        .cloned()
        .collect()
}

#[test]
fn the_crate_boundaries_hold() {
    let m = metadata();
    let core = m.direct("xinlian-core");
    assert_eq!(
        forbidden_in(core, IO_CRATES),
        Vec::<String>::new(),
        "xinlian-core depends directly on an I/O crate"
    );
    assert_eq!(
        forbidden_in(&m.reaches("xinlian-core"), IO_CRATES)
            .into_iter()
            .filter(|c| !REACHED_BY_CORE_THROUGH_DEPENDENCIES.contains(&c.as_str()))
            .collect::<Vec<_>>(),
        Vec::<String>::new(),
        "xinlian-core reaches a store, network or HTTP crate"
    );
    for (krate, banned) in [
        // The protocol and verifier library: no CLI, server, store or runtime; its HTTP
        // client (ureq) only behind the `http` feature.
        ("xinlian-client", IO_CRATES),
        // The consortium definition: no records, blocks or networks.
        ("xinlian-genesis", IO_CRATES),
    ] {
        let direct = m.direct(krate);
        let optional_ureq = krate == "xinlian-client";
        let found: Vec<String> = forbidden_in(direct, banned)
            .into_iter()
            .filter(|d| !(optional_ureq && d == "ureq"))
            .filter(|d| !(krate == "xinlian-genesis" && d == "getrandom"))
            .collect();
        assert_eq!(found, Vec::<String>::new(), "{krate} depends on I/O crates");
    }
    let genesis = m.direct("xinlian-genesis");
    for inner in ["xinlian-client", "xinlian-core", "xinlian-node"] {
        assert!(
            !genesis.contains(inner),
            "xinlian-genesis depends on {inner}"
        );
    }
    for outer in [
        "xinlian-core",
        "xinlian-node",
        "xinlian-cli",
        "xinlian-devnet",
    ] {
        assert!(
            !m.direct("xinlian-client").contains(outer),
            "xinlian-client depends on {outer}"
        );
    }
    assert!(
        !m.reaches("xinlian-core").contains("xinlian-node"),
        "xinlian-core depends on the node"
    );
    // The devnet knows a node only as a process it starts.
    assert!(
        !m.reaches("xinlian-devnet").contains("xinlian-node"),
        "xinlian-devnet links the node library"
    );
    // The CLI talks to nodes over HTTP only.
    for inner in ["xinlian-node", "xinlian-core"] {
        assert!(
            !m.reaches("xinlian-cli").contains(inner),
            "xinlian-cli links {inner}"
        );
    }
    // Only the store names a storage engine (the engine comparison, bench/engines, is a
    // workspace of its own).
    let engine_users: Vec<&String> = m
        .direct
        .iter()
        .filter(|(_, deps)| deps.iter().any(|d| STORAGE_ENGINES.contains(&d.as_str())))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        engine_users,
        vec!["xinlian-store"],
        "who depends on a storage engine"
    );
    // Only the binaries, tests and benchmark depend on the node library.
    let dependents: Vec<&String> = m
        .direct
        .iter()
        .filter(|(_, deps)| deps.contains("xinlian-node"))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        dependents,
        vec!["xinlian-bench", "xinlian-tests"],
        "who depends on xinlian-node"
    );
}

#[test]
fn the_core_source_names_no_io_crate() {
    let core = root().join("node/core/src");
    let mut hits = Vec::new();
    for p in rust_files().into_iter().filter(|p| p.starts_with(&core)) {
        let text = std::fs::read_to_string(&p).expect("readable");
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for c in IO_CRATES {
                let ident = c.replace('-', "_");
                if code.contains(&format!("{ident}::")) {
                    hits.push(format!("{}:{}: {}", p.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "the core names I/O crates:\n{}",
        hits.join("\n")
    );
}

#[test]
fn inside_the_store_only_kv_names_the_engine() {
    let store = root().join("node/store");
    let kv = store.join("src/kv.rs");
    let mut hits = Vec::new();
    for p in rust_files()
        .into_iter()
        .filter(|p| p.starts_with(&store) && *p != kv)
    {
        let text = std::fs::read_to_string(&p).expect("readable");
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for e in STORAGE_ENGINES {
                if code.contains(&format!("{e}::")) || code.contains(&format!("use {e}")) {
                    hits.push(format!("{}:{}: {}", p.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "the engine is named outside node/store/src/kv.rs:\n{}",
        hits.join("\n")
    );
}

/// Functions in `text` longer than `FN_LINES_MAX` lines with no `// Long:` comment in
/// the few lines above: (first line, length, signature). Brace counting per line is
/// enough for rustfmt-formatted code: a body ends at the first line, at the
/// function's own indentation, that is exactly `}`.
fn long_functions(text: &str) -> Vec<(usize, usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut in_tests_from = None;
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            in_tests_from = Some(i);
        }
        let t = line.trim_start();
        let indent = line.len() - t.len();
        let is_fn = [
            "fn ",
            "pub fn ",
            "pub(crate) fn ",
            "pub(super) fn ",
            "async fn ",
            "pub async fn ",
            "const fn ",
            "pub const fn ",
        ]
        .iter()
        .any(|p| t.starts_with(p));
        if !is_fn || in_tests_from.is_some() {
            continue;
        }
        let close = " ".repeat(indent) + "}";
        let Some(end) = (i + 1..lines.len()).find(|&j| lines[j] == close) else {
            continue;
        };
        let length = end - i + 1;
        let explained = lines[i.saturating_sub(8)..i]
            .iter()
            .any(|l| l.trim_start().starts_with("// Long:"));
        if length > FN_LINES_MAX && !explained {
            out.push((i + 1, length, t.to_string()));
        }
    }
    out
}

#[test]
fn no_function_runs_long_without_saying_why() {
    let mut found = Vec::new();
    for p in rust_files() {
        let rel = p.strip_prefix(root()).unwrap_or(&p).to_path_buf();
        // Tests, their harness (the whole `tests/` crate) and benchmarks are
        // scenarios; the rule is for the programs.
        let is_test = rel
            .components()
            .any(|c| matches!(c.as_os_str().to_str(), Some("tests" | "benches")));
        if is_test {
            continue;
        }
        let text = std::fs::read_to_string(&p).expect("readable");
        for (line, length, sig) in long_functions(&text) {
            found.push(format!("{}:{line}: {length} lines: {sig}", rel.display()));
        }
    }
    assert!(
        found.is_empty(),
        "functions over {FN_LINES_MAX} lines with no `// Long:` comment saying why:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_long_function_check_can_fail() {
    let body = "    x();\n".repeat(FN_LINES_MAX);
    let long = format!("fn f() {{\n{body}}}\n");
    assert_eq!(long_functions(&long).len(), 1);
    let explained = format!("// Long: one table.\n{long}");
    assert!(long_functions(&explained).is_empty());
    let short = "fn g() {\n    y();\n}\n";
    assert!(long_functions(short).is_empty());
}
