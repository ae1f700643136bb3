//! The verifiable event stream (`GET /v1/events`, issue 19) against a real node: a
//! consumer that disconnects and reconnects many times during load receives every
//! finalized record exactly once, in ledger order, each verified; filtered streams
//! give exactly a batch's events and one kind; a stream tampered in transit (a record's
//! byte flipped, a record left out) is refused by the library and by `xinlian follow`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use xinlian_client::events::{EventFilter, EventVerifier, VerifiedEvent};
use xinlian_client::http::{FollowError, NodeClient, follow};
use xinlian_client::proof::LightClient;
use xinlian_client::record::{Kind, RecordId};
use xinlian_tests::supply_chain::{food_chain, submit_all};
use xinlian_tests::{Cli, Consortium, Load, Node, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_xinlian-node-under-test");
const CLI: &str = env!("CARGO_BIN_EXE_xinlian-under-test");

/// Every record id of the node's ledger, in ledger order, read block by block.
fn ledger_ids(node: &NodeClient) -> Result<Vec<RecordId>> {
    let tip = node.status()?.height;
    let mut ids = Vec::new();
    for h in 1..=tip {
        ids.extend(node.block(h)?.records);
    }
    Ok(ids)
}

/// A small deterministic generator (xorshift), so a failing schedule repeats.
struct Schedule(u64);

impl Schedule {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Reads up to `events` verified events from one connection, then drops it.
fn read_some(
    node: &NodeClient,
    verifier: &mut EventVerifier,
    events: u64,
    got: &mut Vec<(u64, RecordId)>,
) -> Result<()> {
    let mut stream = node.events(verifier.filter(), verifier.cursor())?;
    let mut taken = 0;
    while taken < events {
        let ev = stream.next_event().map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(v) = verifier.accept(&ev)? {
            got.extend(v.records.iter().map(|r| (r.ledger_index, r.id)));
            taken += 1;
        }
    }
    Ok(())
}

#[test]
fn a_consumer_reconnecting_under_load_gets_every_record_once_in_order() -> Result<()> {
    let c = Consortium::new(BIN)?;
    let node = c.start()?;
    let url = node.client.base_url().to_string();
    let mut verifier = EventVerifier::new(
        LightClient::new(c.genesis.clone()),
        EventFilter::default(),
        0,
    );
    let mut got = Vec::new();
    let mut schedule = Schedule(0x5eed_0019);
    let load = Load::start(&c, vec![url.clone()])?;
    let started = Instant::now();
    let mut connections = 0;
    // Reconnect after a few events each time, while the load runs.
    while connections < 60 || started.elapsed() < Duration::from_secs(4) {
        read_some(&node.client, &mut verifier, 1 + schedule.below(4), &mut got)?;
        connections += 1;
    }
    drop(load);
    // Everything the load got accepted becomes final; then the stream catches up.
    let mut last = (0, Instant::now());
    wait_until(Duration::from_secs(60), "the mempool to drain", || {
        let s = node.client.status().ok();
        let size = s.as_ref().map_or(0, |s| s.ledger_size);
        if size != last.0 {
            last = (size, Instant::now());
        }
        s.is_some_and(|s| s.mempool_records == 0) && last.1.elapsed() > Duration::from_millis(300)
    })?;
    let size = node.client.status()?.ledger_size;
    while verifier.cursor() < size {
        read_some(&node.client, &mut verifier, 1, &mut got)?;
        connections += 1;
    }
    let expected = ledger_ids(&node.client)?;
    ensure!(
        expected.len() > 100,
        "load made only {} records",
        expected.len()
    );
    let indices: Vec<u64> = got.iter().map(|g| g.0).collect();
    ensure!(
        indices == (0..expected.len() as u64).collect::<Vec<_>>(),
        "ledger indices delivered are not each index once, in order"
    );
    let ids: Vec<RecordId> = got.iter().map(|g| g.1).collect();
    ensure!(
        ids == expected,
        "records delivered differ from the ledger's"
    );
    eprintln!(
        "{} records over {connections} connections, each verified once",
        ids.len()
    );

    // `follow` with its own reconnections gives the same from any cursor.
    let from = expected.len() as u64 / 2;
    let mut v = EventVerifier::new(
        LightClient::new(c.genesis.clone()),
        EventFilter::default(),
        from,
    );
    let mut tail = Vec::new();
    follow(
        &node.client,
        &mut v,
        |ev: &VerifiedEvent| {
            tail.extend(ev.records.iter().map(|r| r.id));
            if v_done(ev, size) {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        },
        |_| std::ops::ControlFlow::Break(()),
    )?;
    ensure!(
        tail == expected[from as usize..],
        "follow from {from} differs"
    );
    node.stop()
}

fn v_done(ev: &VerifiedEvent, size: u64) -> bool {
    ev.cursor >= size
}

#[test]
fn filtered_streams_give_a_batchs_events_and_one_kind() -> Result<()> {
    let c = Consortium::new(BIN)?;
    let node = c.start()?;
    let registrar = c.agency("registrar")?;
    let chain = food_chain(&registrar, &registrar, 4, 2, 7)?;
    submit_all(&node.client, &chain.registrations)?;
    submit_all(&node.client, &chain.records)?;
    let batch = chain.origins[0].clone();
    let events = chain.events[&batch].clone();
    let got = collect_until(
        &c,
        &node,
        EventFilter {
            batch: Some(batch.clone()),
            ..EventFilter::default()
        },
        events.len(),
    )?;
    ensure!(
        got == events,
        "batch {batch}: stream {got:?} vs events {events:?}"
    );
    let registrations: Vec<RecordId> = chain.registrations.iter().map(|r| r.id()).collect();
    let got = collect_until(
        &c,
        &node,
        EventFilter {
            kinds: vec![Kind::RegisterEntity],
            ..EventFilter::default()
        },
        registrations.len(),
    )?;
    ensure!(got == registrations, "register_entity stream differs");
    // An enterprise's stream has the records concerning it, its registration first.
    let farm = chain.registrations[0].envelope.body.clone();
    let xinlian_client::record::Body::RegisterEntity(r) = farm else {
        anyhow::bail!("the first registration is a registration");
    };
    let concerning = node.client.enterprise(r.uscc.as_str())?.records;
    let got = collect_until(
        &c,
        &node,
        EventFilter {
            enterprise: Some(r.uscc.clone()),
            ..EventFilter::default()
        },
        concerning.len(),
    )?;
    ensure!(
        got == concerning,
        "enterprise stream differs from its records"
    );
    // A bad filter is refused by the node, not retried.
    let bad = node.client.unsigned();
    let refused = bad.events(
        &EventFilter {
            batch: Some("no spaces allowed".into()),
            ..EventFilter::default()
        },
        0,
    );
    ensure!(matches!(
        refused,
        Err(xinlian_client::http::ClientError::Refused { status: 400, .. })
    ));
    node.stop()
}

/// The first `n` records of a filtered stream, each verified.
fn collect_until(
    c: &Consortium,
    node: &Node,
    filter: EventFilter,
    n: usize,
) -> Result<Vec<RecordId>> {
    let mut v = EventVerifier::new(LightClient::new(c.genesis.clone()), filter, 0);
    let mut ids = Vec::new();
    let mut stream = node.client.events(v.filter(), 0)?;
    while ids.len() < n {
        let ev = stream.next_event().map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(e) = v.accept(&ev)? {
            ids.extend(e.records.iter().map(|r| r.id));
        }
    }
    Ok(ids)
}

/// A one-connection-at-a-time proxy to `upstream` that asks it for HTTP/1.0 (so the
/// stream arrives unchunked, line by line) and passes each `data:` line through
/// `tamper` until it changes one.
fn tampering_proxy(
    upstream: std::net::SocketAddr,
    tamper: fn(&str) -> Option<String>,
) -> Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let Ok(server) = TcpStream::connect(upstream) else {
                return;
            };
            std::thread::spawn(move || {
                let _ = relay(client, server, tamper);
            });
        }
    });
    Ok(addr)
}

fn relay(
    client: TcpStream,
    mut server: TcpStream,
    tamper: fn(&str) -> Option<String>,
) -> Result<()> {
    let mut from_client = BufReader::new(client.try_clone()?);
    let mut request = Vec::new();
    loop {
        let mut line = String::new();
        from_client.read_line(&mut line)?;
        let end = line == "\r\n" || line.is_empty();
        request.extend_from_slice(line.replacen("HTTP/1.1", "HTTP/1.0", 1).as_bytes());
        if end {
            break;
        }
    }
    server.write_all(&request)?;
    let mut from_server = BufReader::new(server);
    let mut to_client = client;
    let mut tampered = false;
    loop {
        let mut line = String::new();
        if from_server.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if !tampered
            && let Some(data) = line.strip_prefix("data: ")
            && let Some(changed) = tamper(data.trim_end())
        {
            line = format!("data: {changed}\n");
            tampered = true;
        }
        to_client.write_all(line.as_bytes())?;
    }
}

/// Flips one hex digit of the first record's bytes.
fn flip_record_byte(data: &str) -> Option<String> {
    let at = data.find("\"record\":\"")? + "\"record\":\"".len() + 10;
    let mut bytes = data.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    String::from_utf8(bytes).ok()
}

/// Leaves out the first record of an event (the unfiltered stream has them all).
fn drop_a_record(data: &str) -> Option<String> {
    let mut v: serde_json::Value = serde_json::from_str(data).ok()?;
    let records = v["records"].as_array_mut()?;
    if records.is_empty() {
        return None;
    }
    records.remove(0);
    Some(v.to_string())
}

#[test]
fn a_stream_tampered_in_transit_is_refused() -> Result<()> {
    let c = Consortium::new(BIN)?;
    let node = c.start()?;
    let registrar = c.agency("registrar")?;
    let chain = food_chain(&registrar, &registrar, 4, 1, 3)?;
    submit_all(&node.client, &chain.registrations)?;
    let upstream: std::net::SocketAddr = node
        .client
        .base_url()
        .trim_start_matches("http://")
        .parse()
        .context("node address")?;
    // Untampered through the proxy, the stream verifies (the proxy itself is sound).
    let clean = tampering_proxy(upstream, |_| None)?;
    let through = NodeClient::new(&format!("http://{clean}"));
    let mut v = EventVerifier::new(
        LightClient::new(c.genesis.clone()),
        EventFilter::default(),
        0,
    );
    let first = through
        .events(v.filter(), 0)?
        .next_event()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(v.accept(&first)?.is_some(), "the first event verifies");

    for (tamper, what) in [
        (
            flip_record_byte as fn(&str) -> Option<String>,
            "a flipped byte",
        ),
        (drop_a_record, "a record left out"),
    ] {
        let proxy = tampering_proxy(upstream, tamper)?;
        let via = NodeClient::new(&format!("http://{proxy}"));
        let mut v = EventVerifier::new(
            LightClient::new(c.genesis.clone()),
            EventFilter::default(),
            0,
        );
        let outcome = follow(
            &via,
            &mut v,
            |_| std::ops::ControlFlow::Continue(()),
            |e| panic!("{what}: the stream broke instead of being refused: {e}"),
        );
        match outcome {
            Err(FollowError::Verify(e)) => eprintln!("{what}: refused: {e}"),
            other => anyhow::bail!("{what}: not refused: {other:?}"),
        }
        ensure!(
            v.cursor() == 0,
            "{what}: nothing before the tampered event was skipped"
        );
        // The CLI says so and exits 1.
        let dir = tempfile::tempdir()?;
        let cli = Cli {
            bin: CLI.into(),
            node: format!("http://{proxy}"),
            genesis: c.path().join("genesis.toml"),
            trust: dir.path().join("trust.json"),
        };
        let out = run_with_timeout(&cli, &["follow"], Duration::from_secs(60))?;
        ensure!(
            out.0 == Some(1) && out.1.contains("event stream refused"),
            "{what}: xinlian follow exited {:?}: {}",
            out.0,
            out.1
        );
    }
    node.stop()
}

/// Runs the CLI, killing it after `limit`; its exit code and standard error.
fn run_with_timeout(cli: &Cli, args: &[&str], limit: Duration) -> Result<(Option<i32>, String)> {
    let mut child = std::process::Command::new(&cli.bin)
        .args(args)
        .env("XINLIAN_NODE", &cli.node)
        .env("XINLIAN_GENESIS", &cli.genesis)
        .env("XINLIAN_TRUST", &cli.trust)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .context("stderr")?
        .read_to_string(&mut err)?;
    Ok((status.code(), err))
}
