//! The web pages end to end, in headless Chromium (Debian's `chromium`, driven by
//! playwright-core from the node's own build: `xinlian_node::web::E2E_DRIVER`), against
//! the devnet and its sample data:
//! - every page renders the sample in Chinese and in English, at a phone's and at a
//!   desktop's width, and is screenshotted (into `target/web-screenshots/`);
//! - the recalled drug lot's page shows the recall;
//! - a record bundle dropped on the verify page verifies and a tampered one does not; the
//!   provenance bundle the batch page offers, downloaded and dropped there, verifies;
//! - the batch label's QR code decodes to the batch page's address naming the chain, and
//!   that page verifies against the chain it names;
//! - through a proxy that changes one byte of one answer (the genesis file, the roster
//!   changes, a provenance answer, a block, a record proof), the page says "not
//!   verified" with a reason and shows none of the content as verified.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use xinlian_client::proof::{BUNDLE_FORMAT, Bundle, LightClient};
use xinlian_client::record::RecordId;
use xinlian_genesis::Genesis;
use xinlian_genesis::scaffold::genesis_path;
use xinlian_tests::wait_until;

const BIN: &str = env!("CARGO_BIN_EXE_xinlian-node-under-test");
const CHROMIUM: &str = "/usr/bin/chromium";
/// Bytes changed per answer the pages verify: different positions each time.
const CASES_PER_ANSWER: u64 = 4;

/// Which answer to change, and which of its hex digits or digits.
#[derive(Default)]
struct Tamper {
    armed: Option<(String, u64)>,
    applied: Vec<String>,
}

/// A proxy in front of the node: it forwards every request and, when armed, changes one
/// byte of the first answer whose path starts with the armed prefix — the `n`-th digit
/// or lower-case hex digit of its body, to another of its kind — then disarms.
/// `POST /__tamper` with `PREFIX N` arms it; `GET /__tamper` says what it changed.
struct Proxy {
    url: String,
}

impl Proxy {
    fn start(node: &str) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(Tamper::default()));
        let node = node.to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (state, node) = (state.clone(), node.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &node, &state);
                });
            }
        });
        Ok(Proxy { url })
    }
}

fn serve(mut conn: TcpStream, node: &str, state: &Mutex<Tamper>) -> Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("/").to_string(),
    );
    let (mut length, mut content_type) = (0usize, None::<String>);
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        if h.trim().is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((&h, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = v.trim().parse()?,
            "content-type" => content_type = Some(v.trim().to_string()),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    if path == "/__tamper" {
        let mut s = state.lock().expect("proxy state");
        let answer = if method == "POST" {
            let text = String::from_utf8_lossy(&body).to_string();
            let (prefix, n) = text.rsplit_once(' ').context("PREFIX N")?;
            s.armed = Some((prefix.to_string(), n.parse()?));
            "armed".to_string()
        } else {
            // Read once per case: a case whose answer was never altered leaves the
            // proxy disarmed for the next.
            let a = s.applied.join("; ");
            s.applied.clear();
            s.armed = None;
            a
        };
        return respond(&mut conn, 200, "text/plain", &[], answer.as_bytes());
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{node}{path}");
    let mut answer = if method == "POST" {
        agent
            .post(&url)
            .header(
                "content-type",
                content_type.as_deref().unwrap_or("application/json"),
            )
            .send(&body[..])?
    } else {
        agent.get(&url).call()?
    };
    let status = answer.status().as_u16();
    let keep: Vec<(String, String)> = [
        "content-type",
        "content-security-policy",
        "x-content-type-options",
    ]
    .iter()
    .filter_map(|k| {
        let v = answer.headers().get(*k)?.to_str().ok()?;
        Some((k.to_string(), v.to_string()))
    })
    .collect();
    let mut bytes = answer
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()?;
    {
        let mut s = state.lock().expect("proxy state");
        if let Some((prefix, n)) = s.armed.clone()
            && status == 200
            && path.starts_with(&prefix)
        {
            let eligible: Vec<usize> = (0..bytes.len())
                .filter(|&i| bytes[i].is_ascii_digit() || (b'a'..=b'f').contains(&bytes[i]))
                .collect();
            if !eligible.is_empty() {
                let i = eligible[(n as usize) % eligible.len()];
                let before = bytes[i];
                bytes[i] = match before {
                    b'0'..=b'8' => before + 1,
                    b'9' => b'0',
                    b'a'..=b'e' => before + 1,
                    _ => b'a',
                };
                s.applied.push(format!(
                    "{path} byte {i}: {} -> {}",
                    before as char, bytes[i] as char
                ));
                s.armed = None;
            }
        }
    }
    let ct = keep
        .iter()
        .find(|(k, _)| k == "content-type")
        .map_or("application/octet-stream".to_string(), |(_, v)| v.clone());
    let others: Vec<(String, String)> = keep
        .into_iter()
        .filter(|(k, _)| k != "content-type")
        .collect();
    respond(&mut conn, status, &ct, &others, &bytes)
}

fn respond(
    conn: &mut TcpStream,
    status: u16,
    content_type: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)?;
    Ok(())
}

/// A record bundle of the devnet, as `xinlian prove` writes it, and a copy with one byte
/// of the record changed.
fn record_bundles(
    node: &xinlian_tests::Node,
    genesis: &Genesis,
    id: &RecordId,
    dir: &Path,
) -> Result<(PathBuf, PathBuf)> {
    let mut light = LightClient::new(genesis.clone());
    light.accept_changes(&node.client.roster_changes(1)?.changes)?;
    let proof = node.client.record_proof(id, None)?;
    let verified = light.verify_record(&proof)?;
    let mut bundle = Bundle {
        format: BUNDLE_FORMAT.into(),
        chain: light.chain(),
        roster_changes: light.changes_until(verified.final_at + 1),
        proof,
    };
    let good = dir.join("record.bundle.json");
    std::fs::write(&good, serde_json::to_string_pretty(&bundle)?)?;
    let record = &mut bundle.proof.entry.record.0;
    let last = record.len() - 70;
    record[last] ^= 1;
    let bad = dir.join("record.tampered.json");
    std::fs::write(&bad, serde_json::to_string_pretty(&bundle)?)?;
    Ok((good, bad))
}

/// The screenshots' folder: beside the build output, never in the sources.
fn screenshots() -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    let dir = target.join("web-screenshots");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The label's QR code, read from its screenshot.
fn decode_qr(png_file: &Path) -> Result<String> {
    let decoder = png::Decoder::new(BufReader::new(std::fs::File::open(png_file)?));
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().context("image size")?];
    let info = reader.next_frame(&mut buf)?;
    let channels = info.color_type.samples();
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        let p = &buf[(y * w + x) * channels..];
        // Luma of RGB(A), or the grey sample itself.
        if channels >= 3 {
            ((u32::from(p[0]) * 3 + u32::from(p[1]) * 6 + u32::from(p[2])) / 10) as u8
        } else {
            p[0]
        }
    });
    let grids = img.detect_grids();
    ensure!(
        grids.len() == 1,
        "{} QR codes found on the label",
        grids.len()
    );
    let (_, content) = grids[0].decode()?;
    Ok(content)
}

#[test]
fn the_pages_render_verify_and_refuse_altered_answers_in_chromium() -> Result<()> {
    if !Path::new(CHROMIUM).exists() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        ensure!(
            !ci,
            "{CHROMIUM} is missing: CI must install Debian's chromium (.ci/run)"
        );
        eprintln!("SKIPPED: {CHROMIUM} is not installed (apt install chromium)");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let mut cmd = Command::new(BIN);
    cmd.args(["devnet", "--plain-http", "--port", "0", "--dir"])
        .arg(dir.path());
    let node = xinlian_tests::start_command(cmd, dir.path().join("devnet.log"))?;
    wait_until(Duration::from_secs(90), "the sample data", || {
        dir.path().join("sample.json").exists()
    })?;
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("sample.json"))?)?;
    let genesis_file = genesis_path(dir.path());
    let genesis = Genesis::load(&genesis_file)?;
    let base = node.client.base_url().to_string();
    let proxy = Proxy::start(&base)?;
    let (recalled, food) = ("amox-2026-L002", "rice-pack-2026-001");
    let first_record =
        RecordId::from_hex(manifest["records"][0][1].as_str().context("a record id")?)?;
    let work = tempfile::tempdir()?;
    let (bundle, tampered_bundle) = record_bundles(&node, &genesis, &first_record, work.path())?;
    let out = screenshots()?;
    let chain = genesis.hash().to_hex();
    let label_url = xinlian_node::web::batch_page_url(&base, recalled, &chain);
    let mut cases = Vec::new();
    let batch_page = format!("#/batch/{recalled}");
    // The manufacturer: a fulfilled commitment and a reward listing in the sample.
    let enterprise = (manifest["enterprises"]
        .as_array()
        .context("enterprises")?
        .iter())
    .find(|e| e["slug"] == "pharma")
    .and_then(|e| e["uscc"].as_str())
    .context("the sample's manufacturer")?
    .to_string();
    let enterprise_page = format!("#/enterprise/{enterprise}");
    for (path, page) in [
        ("/v1/genesis", batch_page.as_str()),
        ("/v1/rosters", batch_page.as_str()),
        ("/v1/batches/", batch_page.as_str()),
        ("/v1/blocks/", "#/operator"),
        ("/v1/records/", enterprise_page.as_str()),
    ] {
        for k in 0..CASES_PER_ANSWER {
            // Spread over the answer: a prime stride through its eligible bytes.
            cases.push(serde_json::json!({ "path": path, "n": 7 + k * 7919, "page": page }));
        }
    }
    let config = serde_json::json!({
        "base": base,
        "proxy": proxy.url,
        "out": out,
        "recalled": recalled,
        "food": food,
        "enterprise": enterprise,
        "genesis": genesis_file,
        "bundle": bundle,
        "tampered_bundle": tampered_bundle,
        "label_url": label_url,
        "cases": cases,
    });
    let config_file = work.path().join("e2e.json");
    std::fs::write(&config_file, config.to_string())?;
    let run = Command::new("node")
        .arg(xinlian_node::web::E2E_DRIVER)
        .arg(&config_file)
        .output()
        .context("run Node.js")?;
    ensure!(
        run.status.success(),
        "the end-to-end driver failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: Value = serde_json::from_slice(&run.stdout)?;

    // Every page, both languages, both widths.
    let pages = report["pages"].as_object().context("pages")?;
    ensure!(pages.len() == 24, "{} page renderings", pages.len());
    for (name, p) in pages {
        let text = p["text"].as_str().unwrap_or_default();
        let zh = name.contains("-zh-");
        ensure!(
            p["lang"] == if zh { "zh-CN" } else { "en" },
            "{name}: lang {}",
            p["lang"]
        );
        ensure!(
            Path::new(p["file"].as_str().unwrap_or_default()).exists(),
            "{name}: no screenshot"
        );
        if !name.starts_with("home") {
            ensure!(
                p["verdict"] == "ok",
                "{name} did not verify: {}",
                p["reason"]
            );
        }
        let expect: &[&str] = match (name.split('-').next().unwrap_or(""), zh) {
            ("batch", true) if name.starts_with("batch-recalled") => {
                &["召回", "阿莫西林", "已验证"]
            }
            ("batch", false) if name.starts_with("batch-recalled") => {
                &["RECALLED", "amoxicillin", "Verified"]
            }
            ("batch", true) => &["已验证", "时间线", "托管交接"],
            ("batch", false) => &["Verified", "Timeline", "Custody transfers"],
            ("verify", true) => &["已验证", "签名者"],
            ("verify", false) => &["Verified", "Signer"],
            ("operator", true) => &["最近区块", "sh-credit-centre"],
            ("operator", false) => &["Recent blocks", "sh-credit-centre"],
            ("enterprise", true) => &["信用承诺", "已履约", "守信激励", "华康"],
            ("enterprise", false) => &["Credit commitments", "fulfilled", "reward list", "Huakang"],
            ("home", true) => &["批次号"],
            (_, _) => &["Batch id"],
        };
        for e in expect {
            ensure!(text.contains(e), "{name} does not show {e:?}:\n{text}");
        }
    }
    ensure!(
        report["verify_tampered"]["verdict"] == "bad",
        "a tampered bundle verified: {}",
        report["verify_tampered"]
    );
    ensure!(
        report["verify_downloaded"]["verdict"] == "ok",
        "the batch page's bundle did not verify: {}",
        report["verify_downloaded"]
    );

    // The label opens the batch page, naming the chain; that page verifies against it.
    let decoded = decode_qr(Path::new(report["label_png"].as_str().context("label")?))?;
    ensure!(
        decoded == label_url,
        "the label's code reads {decoded:?}, not {label_url:?}"
    );
    let opened = &report["label_page"];
    ensure!(opened["verdict"] == "ok", "the label's page: {opened}");
    ensure!(
        opened["text"]
            .as_str()
            .is_some_and(|t| t.contains("对照标签上的链标识")),
        "{opened}"
    );

    // One byte of one answer changed: never verified, always a reason.
    let tampered = report["tampered"].as_array().context("tampered")?;
    let mut applied = 0;
    for c in tampered {
        if c["applied"].as_str().is_none_or(str::is_empty) {
            continue; // the answer had nothing to change
        }
        applied += 1;
        ensure!(c["verdict"] == "bad", "an altered answer verified: {c}");
        ensure!(
            c["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "no reason: {c}"
        );
        let text = c["text"].as_str().unwrap_or_default();
        ensure!(
            ["amoxicillin", "Huakang", "Recent blocks", "Timeline"]
                .iter()
                .all(|shown| !text.contains(shown)),
            "altered content shown: {c}"
        );
    }
    ensure!(applied >= 16, "only {applied} answers were altered");
    eprintln!(
        "24 renderings in {}; {applied} altered answers refused; batch page verified in {} ms",
        out.display(),
        pages["batch-recalled-en-desktop"]["ms"]
    );
    Ok(())
}
