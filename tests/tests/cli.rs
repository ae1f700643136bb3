//! The `xinlian` CLI as a user runs it: a key made by `openssl genpkey` is registered
//! and signs a record end to end; the record's proof is verified online, written as an
//! offline bundle, verified with no node at all, and verified again by an independent
//! implementation (Python's `cryptography` and hashlib, tests/python/verify_bundle.py).
//! Exit codes separate "invalid" (1) from "unreachable" (2).

use std::path::Path;
use std::process::Command;

use xinlian_genesis::scaffold::{genesis_path, signing_key_path};
use xinlian_tests::{Cli, json_field};

const CLI: &str = env!("CARGO_BIN_EXE_xinlian-under-test");

fn openssl_key(path: &Path) {
    let out = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(path)
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(out.status.success(), "openssl genpkey: {out:?}");
}

fn python_verifies(genesis: &Path, bundle: &Path) -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/verify_bundle.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(genesis)
        .arg(bundle)
        .output()
        .expect("python3 is installed");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "Python's `cryptography` package is missing (.ci/run installs it): {stderr}"
    );
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(stderr)
    }
}

#[test]
fn an_openssl_key_signs_end_to_end_and_proofs_verify_offline_and_independently()
-> anyhow::Result<()> {
    let c = xinlian_tests::consortium!()?;
    let node = c.start()?;
    let dir = c.path();
    let cli = Cli {
        bin: CLI.into(),
        node: node.client.base_url().to_string(),
        genesis: genesis_path(dir),
        trust: dir.join("trust.json"),
    };

    let key = dir.join("acme.pem");
    openssl_key(&key);
    let public = cli.ok(&["key", "show", key.to_str().unwrap()]);
    // The registration is built from flags, the commission below from a JSON file.
    let uscc = xinlian_client::ids::Uscc::with_check("91310117MA1G0A1B2").unwrap();
    let registrar = signing_key_path(dir, "registrar");
    let out = cli.ok(&[
        "submit",
        "--key",
        registrar.to_str().unwrap(),
        "--kind",
        "register_entity",
        "-f",
        &format!("uscc={uscc}"),
        "-f",
        "name=上海测试农场",
        "-f",
        &format!("key={}", public.trim()),
        "-f",
        "check_override=null",
        // The enterprise's key file: the proof of possession is made with it.
        "--new-key",
        key.to_str().unwrap(),
        "--wait",
    ]);
    assert!(out.starts_with("VERIFIED register_entity"), "{out}");
    // The same proof, printed for a body written by hand.
    let proof = cli.ok(&[
        "key",
        "possession",
        "--key",
        key.to_str().unwrap(),
        "--enterprise",
        uscc.as_str(),
    ]);
    assert_eq!(proof.trim().len(), 128, "{proof}");
    assert!(out.contains("consortium member 'registrar'"), "{out}");

    // The openssl key signs a record; --wait verifies it from genesis.
    let body = dir.join("commission.json");
    std::fs::write(
        &body,
        serde_json::to_string(&xinlian_tests::commission("openssl-batch"))?,
    )?;
    let key_arg = key.to_str().unwrap();
    let body_arg = body.to_str().unwrap();
    let submit = [
        "--json",
        "submit",
        "--key",
        key_arg,
        "--kind",
        "commission",
        "--body",
        body_arg,
        "--wait",
    ];
    let out = cli.ok(&submit);
    let id = json_field(&out, "id");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["signer"]["type"], "enterprise", "{out}");
    assert_eq!(v["signer"]["registrar"], "registrar", "{out}");
    assert!(
        cli.trust.exists(),
        "the verified header is kept for next time"
    );

    // Online verification of the record by id, then an offline bundle.
    let out = cli.ok(&["verify", &id]);
    assert!(
        out.contains(&id) && out.starts_with("VERIFIED commission"),
        "{out}"
    );
    let bundle = dir.join("bundle.json");
    cli.ok(&["prove", &id, "-o", bundle.to_str().unwrap()]);
    drop(node);

    // No node is running now: the bundle verifies offline, by us and by Python.
    let out = cli.ok(&["verify", bundle.to_str().unwrap()]);
    assert!(out.contains(&id), "{out}");
    let py = python_verifies(&cli.genesis, &bundle).expect("Python verifies the bundle");
    assert_eq!(json_field(&py, "record_id"), id, "{py}");
    assert_eq!(json_field(&py, "signer"), public.trim(), "{py}");

    // One byte of the bundled record changed: both refuse, ours with exit code 1.
    let text = std::fs::read_to_string(&bundle)?;
    let mut v: serde_json::Value = serde_json::from_str(&text)?;
    let rec = v["proof"]["entry"]["record"].as_str().unwrap().to_string();
    let flipped = if rec.ends_with('0') { "1" } else { "0" };
    v["proof"]["entry"]["record"] = format!("{}{flipped}", &rec[..rec.len() - 1]).into();
    let tampered = dir.join("tampered.json");
    std::fs::write(&tampered, serde_json::to_string_pretty(&v)?)?;
    let out = cli.run(&["verify", tampered.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("verification failed") && stderr.contains("record"),
        "{stderr}"
    );
    assert!(python_verifies(&cli.genesis, &tampered).is_err());

    // The node is gone: asking it is "unreachable", exit code 2.
    let out = cli.run(&["verify", &id]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    Ok(())
}

/// `xinlian submit-signed`: records signed elsewhere, one per line, go in order and
/// become final; a line that is no signed record is refused naming it, nothing sent.
#[test]
fn records_signed_elsewhere_are_submitted_in_bulk() -> anyhow::Result<()> {
    let c = xinlian_tests::consortium!()?;
    let node = c.start()?;
    let dir = c.path();
    let uscc = xinlian_client::ids::Uscc::with_check("91310000MA1BULK00")?;
    let (farm, _) = xinlian_tests::register_enterprise(
        &c,
        &node.client,
        uscc,
        xinlian_genesis::keys::generate()?,
    )?;
    let records: Vec<_> = (0..5)
        .map(|n| farm.sign(xinlian_tests::commission(&format!("bulk-{n}"))))
        .collect();
    let lines: Vec<String> = records
        .iter()
        .map(|r| serde_json::to_string(r).expect("records serialise"))
        .collect();
    let file = dir.join("signed.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n")?;
    let cli = Cli {
        bin: CLI.into(),
        node: node.client.base_url().to_string(),
        genesis: genesis_path(dir),
        trust: dir.join("trust.json"),
    };
    let out = cli.ok(&["--json", "submit-signed", file.to_str().unwrap(), "--wait"]);
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["submitted"], 5, "{out}");
    for r in &records {
        let view = node.client.record(&r.id(), 0)?;
        assert!(view.height.is_some(), "{} not final", r.id());
    }
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, format!("{}\nnot json\n", lines[0]))?;
    let out = cli.run(&["submit-signed", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 2"),
        "{out:?}"
    );
    node.stop()
}
