//! Builds the web pages (node/web: TypeScript, from the npm registry, pinned by its
//! lockfile) into `OUT_DIR/web`, where `src/web.rs` embeds them. The sources are copied
//! under OUT_DIR and installed there with `npm ci`, so the build writes nothing beside
//! them and the built assets are never in the source tree (docs/web.md).

use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCES: &[&str] = &[
    "package.json",
    "package-lock.json",
    "tsconfig.json",
    "build.mjs",
    "src",
];

fn main() {
    let web =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("web");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    for s in SOURCES {
        println!("cargo:rerun-if-changed=web/{s}");
    }
    let work = out.join("web-src");
    std::fs::create_dir_all(&work).expect("create the build folder");
    for s in SOURCES {
        copy(&web.join(s), &work.join(s));
    }
    let lock = std::fs::read(web.join("package-lock.json")).expect("node/web/package-lock.json");
    let stamp = work.join("node_modules/.xinlian-lock");
    if std::fs::read(&stamp).ok().as_deref() != Some(lock.as_slice()) {
        run(
            Command::new("npm")
                .args([
                    "ci",
                    "--no-audit",
                    "--no-fund",
                    "--prefer-offline",
                    "--loglevel=error",
                ])
                .current_dir(&work),
            "npm ci",
        );
        std::fs::write(&stamp, &lock).expect("write the install stamp");
    }
    run(
        Command::new("node")
            .arg("build.mjs")
            .arg(out.join("web"))
            .current_dir(&work),
        "node build.mjs (tsc, esbuild)",
    );
}

/// Copies a file or a folder tree, writing only what changed (so tsc and esbuild see
/// stable times), and removes files the source no longer has.
fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("create a build folder");
        let mut names = std::collections::BTreeSet::new();
        for e in std::fs::read_dir(from).expect("read node/web") {
            let name = e.expect("read node/web").file_name();
            copy(&from.join(&name), &to.join(&name));
            names.insert(name);
        }
        for e in std::fs::read_dir(to)
            .expect("read the build folder")
            .flatten()
        {
            if !names.contains(&e.file_name()) {
                let p = e.path();
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
    } else {
        let data = std::fs::read(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
        if std::fs::read(to).ok().as_deref() != Some(data.as_slice()) {
            std::fs::write(to, data).unwrap_or_else(|e| panic!("write {}: {e}", to.display()));
        }
    }
}

fn run(cmd: &mut Command, what: &str) {
    let status = cmd.status().unwrap_or_else(|e| {
        panic!(
            "{what}: {e}. The node's web pages are built with Node.js 20+ and npm (Debian: apt install nodejs npm); see docs/web.md"
        )
    });
    assert!(
        status.success(),
        "{what} failed ({status}); see the output above"
    );
}
