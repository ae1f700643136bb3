//! Packaging (issue 19): the `.deb` that `cargo deb -p xinlian-node` makes from
//! `node/Cargo.toml`'s `[package.metadata.deb]` and `node/debian/`. Built here from
//! this checkout's node (its main, as the tests build it, under a target folder of the
//! test's own, so nothing else is built); unpacked into a scratch root; its files,
//! control fields and maintainer scripts checked; its unit verified by
//! `systemd-analyze verify`; and the packaged binary, configured by its own `init`,
//! started as a member's node and serving.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use xinlian_genesis::scaffold::{genesis_path, node_key_path};
use xinlian_tests::{Consortium, start_command};

const BIN: &str = env!("CARGO_BIN_EXE_xinlian-node-under-test");

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `.deb`, built with cargo-deb from the node the tests run.
fn build_deb(scratch: &Path) -> Result<std::path::PathBuf> {
    let target = scratch.join("target");
    std::fs::create_dir_all(target.join("debug"))?;
    std::fs::copy(BIN, target.join("debug/xinlian-node"))?;
    let deb = scratch.join("xinlian-node.deb");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let version = Command::new("cargo").args(["deb", "--version"]).output();
    ensure!(
        version.is_ok_and(|o| o.status.success()),
        "cargo-deb is missing: `cargo install cargo-deb --locked` (.ci/run installs it)"
    );
    run(Command::new("cargo")
        .current_dir(&workspace)
        .env("CARGO_TARGET_DIR", &target)
        .args([
            "deb",
            "-p",
            "xinlian-node",
            "--no-build",
            "--profile",
            "dev",
            "--fast",
        ])
        .arg("--output")
        .arg(&deb))?;
    Ok(deb)
}

#[test]
fn the_deb_installs_into_a_scratch_root_and_its_node_runs() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let deb = build_deb(scratch.path())?;
    let root = scratch.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    for file in [
        "usr/bin/xinlian-node",
        "usr/lib/systemd/system/xinlian-node.service",
        "usr/share/doc/xinlian-node/operations.md",
        "usr/share/doc/xinlian-node/grafana-dashboard.json",
    ] {
        ensure!(root.join(file).is_file(), "the package lacks {file}");
    }
    let info = run(Command::new("dpkg-deb").arg("-I").arg(&deb))?;
    for field in ["Package: xinlian-node", "Depends: adduser", "Section: net"] {
        ensure!(info.contains(field), "control lacks {field:?}:\n{info}");
    }
    // The maintainer scripts: valid shell; postinst makes the user and the config folder.
    let control = scratch.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control))?;
    for script in ["postinst", "postrm", "prerm"] {
        run(Command::new("sh").arg("-n").arg(control.join(script)))?;
    }
    let postinst = std::fs::read_to_string(control.join("postinst"))?;
    ensure!(
        postinst.contains("adduser --system") && postinst.contains("/etc/xinlian"),
        "postinst does not make the user and /etc/xinlian:\n{postinst}"
    );

    // The unit: as systemd reads it, with ExecStart naming the unpacked binary (this
    // machine has no /usr/bin/xinlian-node, and no systemd units under the scratch root).
    let unit = std::fs::read_to_string(root.join("usr/lib/systemd/system/xinlian-node.service"))?;
    for line in [
        "ExecStart=/usr/bin/xinlian-node run --config /etc/xinlian/node.toml",
        "User=xinlian",
        "StateDirectory=xinlian",
    ] {
        ensure!(unit.contains(line), "the unit lacks {line:?}");
    }
    let packaged = root.join("usr/bin/xinlian-node");
    if Path::new("/usr/bin/systemd-analyze").exists() {
        let units = scratch.path().join("units");
        std::fs::create_dir_all(&units)?;
        let rewritten = unit.replace("/usr/bin/xinlian-node", &packaged.display().to_string());
        std::fs::write(units.join("xinlian-node.service"), rewritten)?;
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(units.join("xinlian-node.service"))
            .output()?;
        ensure!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("systemd-analyze is not on this machine: the unit was not verified");
    }

    // The packaged binary, configured by its own `init`, runs a member's node.
    let c = Consortium::new(BIN)?;
    let config = scratch.path().join("node.toml");
    run(Command::new(&packaged)
        .arg("init")
        .arg("--genesis")
        .arg(genesis_path(c.path()))
        .arg("--key")
        .arg(node_key_path(c.path(), "v0"))
        .arg("--data")
        .arg(scratch.path().join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .arg("--out")
        .arg(&config))?;
    let mut cmd = Command::new(&packaged);
    cmd.arg("run").arg("--config").arg(&config);
    let node = start_command(cmd, scratch.path().join("node.log"))?;
    xinlian_tests::wait_until(std::time::Duration::from_secs(30), "a block", || {
        node.client.status().is_ok_and(|s| s.height >= 1)
    })?;
    node.stop()
}
