//! A node's configuration file: `xinlian-node init` writes one for a member, a node
//! started from it joins the consortium, the environment overrides the file and flags
//! override both, an invalid setting is refused at start naming its key, and the JSON
//! log format writes one object per event.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use xinlian_genesis::scaffold::{genesis_path, node_key_path};
use xinlian_tests::{Consortium, Node, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_xinlian-node-under-test");

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `xinlian-node run --config FILE` with `args` and `env`, started and waited for.
fn run_from(config: &Path, args: &[&str], env: &[(&str, String)], log: &Path) -> Result<Node> {
    let mut cmd = Command::new(BIN);
    cmd.arg("run").arg("--config").arg(config).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    xinlian_tests::start_command(cmd, log.to_path_buf())
}

fn port_of(node: &Node) -> u16 {
    node.client
        .base_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_node_started_from_inits_file_joins_and_settings_override_in_order() -> Result<()> {
    let c = Consortium::with_nodes(BIN, 4, 0)?;
    let mut nodes: Vec<Node> = Vec::new();
    for id in ["v0", "v1", "v2"] {
        let peers: Vec<&Node> = nodes.iter().collect();
        nodes.push(c.start_member(id, &peers)?);
    }
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("v3.toml");
    let (file_port, env_port, flag_port) = (free_port()?, free_port()?, free_port()?);
    let mut init = Command::new(BIN);
    init.arg("init")
        .arg("--genesis")
        .arg(genesis_path(c.path()))
        .arg("--key")
        .arg(node_key_path(c.path(), "v3"))
        .arg("--data")
        .arg(c.data_dir_of("v3"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{file_port}"))
        .arg("--out")
        .arg(&config);
    for n in &nodes {
        init.arg("--peer").arg(&n.p2p);
    }
    let out = init.output()?;
    anyhow::ensure!(
        out.status.success(),
        "init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&config)?;
    assert!(text.contains("for v3 ("), "names the member:\n{text}");
    // Never overwritten.
    assert!(
        !init.output()?.status.success(),
        "a second init overwrote the file"
    );
    // Paths given relative to where init runs are written absolute (run reads relative
    // ones from the file's folder).
    let relative = dir.path().join("relative.toml");
    let genesis = genesis_path(c.path());
    let out = Command::new(BIN)
        .current_dir(c.path())
        .arg("init")
        .arg("--genesis")
        .arg(genesis.strip_prefix(c.path())?)
        .arg("--key")
        .arg(node_key_path(c.path(), "v3").strip_prefix(c.path())?)
        .arg("--data")
        .arg("data-v3")
        .arg("--out")
        .arg(&relative)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read_to_string(&relative)?;
    let data_line = format!("data = \"{}\"", c.data_dir_of("v3").display());
    let genesis_line = format!("genesis = \"{}\"", genesis.display());
    assert!(
        written.contains(&data_line) && written.contains(&genesis_line),
        "{written}"
    );
    // JSON logs, set in the file.
    std::fs::write(
        &config,
        text.replace("# format = \"text\"", "format = \"json\""),
    )?;

    let log = dir.path().join("v3.log");
    let v3 = run_from(&config, &[], &[], &log)?;
    assert_eq!(port_of(&v3), file_port, "the file's listen address");
    let farm = {
        let uscc = xinlian_client::ids::Uscc::with_check("91310117MA1G0A1B2")
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        xinlian_tests::register_enterprise(
            &c,
            &nodes[0].client,
            uscc,
            xinlian_genesis::keys::generate()?,
        )?
        .0
    };
    let last = nodes[0]
        .client
        .submit_and_wait(&farm.sign(xinlian_tests::commission("c1")), 20_000)?
        .height
        .context("final")?;
    wait_until(
        Duration::from_secs(30),
        "v3 at the consortium's height as a validator",
        || {
            v3.client
                .status()
                .is_ok_and(|s| s.validator && s.node == "v3" && s.height >= last)
        },
    )?;
    v3.stop()?;
    // Every line of its log is one JSON object, with the event's fields.
    let written = std::fs::read_to_string(&log)?;
    let mut opened = 0;
    for line in written.lines().filter(|l| !l.trim().is_empty()) {
        let event: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
        assert!(
            event["level"].is_string() && event["fields"].is_object(),
            "{line}"
        );
        if event["fields"]["message"] == "store opened" {
            assert_eq!(event["fields"]["member"], "v3", "{line}");
            opened += 1;
        }
    }
    assert_eq!(opened, 1, "one 'store opened' event:\n{written}");

    // The environment over the file, and a flag over both.
    let env = [("XINLIAN_LISTEN", format!("127.0.0.1:{env_port}"))];
    let v3 = run_from(&config, &[], &env, &log)?;
    assert_eq!(port_of(&v3), env_port, "XINLIAN_LISTEN over the file");
    v3.stop()?;
    let flag = format!("127.0.0.1:{flag_port}");
    let v3 = run_from(&config, &["--listen", &flag], &env, &log)?;
    assert_eq!(port_of(&v3), flag_port, "--listen over XINLIAN_LISTEN");
    v3.stop()?;

    // Invalid settings are refused at start, each naming its key, and nothing starts.
    let bad = dir.path().join("bad.toml");
    let valid = std::fs::read_to_string(&config)?;
    for (change, key) in [
        (valid.replace("# nice = 10", "nice = 25"), "api.nice"),
        (format!("{valid}\ncache_mbb = 5\n"), "cache_mbb"),
        (
            valid.replace("format = \"json\"", "format = \"xml\""),
            "format",
        ),
    ] {
        std::fs::write(&bad, change)?;
        let out = Command::new(BIN)
            .arg("run")
            .arg("--config")
            .arg(&bad)
            .stdout(Stdio::null())
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(key),
            "{key}: {stderr}"
        );
    }
    let out = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("XINLIAN_API_RATE", "lots")
        .stdout(Stdio::null())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("api-rate"),
        "{stderr}"
    );
    Ok(())
}
