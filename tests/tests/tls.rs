//! The API over TLS (`--tls-cert`, `--tls-key`): clients that trust the consortium's CA
//! read and verify through it, the CLI with `--ca`; a client trusting other roots, or
//! speaking plain HTTP, gets no answer; and connections that never finish a handshake
//! neither hold up other clients (handshakes run concurrently) nor stay open past the
//! handshake time; connections over the cap are closed without a byte in clear.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use xinlian_client::http::{ClientError, NodeClient, RequestSigner};
use xinlian_tests::{Cli, Consortium};

const BIN: &str = env!("CARGO_BIN_EXE_xinlian-node-under-test");
const CLI: &str = env!("CARGO_BIN_EXE_xinlian-under-test");

/// The node's `HANDSHAKE_TIME`.
const HANDSHAKE_TIME: Duration = Duration::from_secs(10);

fn unreachable(r: Result<impl std::fmt::Debug, ClientError>) -> String {
    match r {
        Err(ClientError::Unreachable { reason, .. }) => reason,
        other => panic!("expected no answer, got {other:?}"),
    }
}

#[test]
fn the_api_is_served_over_tls_to_clients_that_trust_its_ca_alone() -> Result<()> {
    let c = Consortium::new(BIN)?;
    let node = c.start_member_tls("v0", &[], &["--api-connections", "64"])?;
    let url = node.client.base_url().to_string();
    ensure!(url.starts_with("https://127.0.0.1:"), "{url}");
    let port = url.rsplit(':').next().unwrap().to_string();

    // Trusting the CA: read, and read signed as a member.
    let status = node.client.status()?;
    assert_eq!(status.chain_id, c.genesis.chain_id);
    let member = node.client.unsigned().signed_by(RequestSigner {
        keyid: "member:v0".into(),
        key: c.node_key("v0")?,
    });
    assert_eq!(
        member.roster()?.roster.members.len(),
        c.genesis.members.len()
    );

    // The CLI verifies the node's head from genesis through TLS with --ca, and refuses
    // without it (exit 2: no usable answer).
    let cli = Cli {
        bin: CLI.into(),
        node: url.clone(),
        genesis: c.path().join("genesis.toml"),
        trust: c.path().join("trust.json"),
    };
    let ca = c.tls_ca();
    cli.ok(&["--ca", ca.to_str().unwrap(), "status"]);
    let without = cli.run(&["status"]);
    assert_eq!(without.status.code(), Some(2), "{without:?}");

    // The public roots do not vouch for the consortium's certificate, nor does another CA.
    let reason = unreachable(NodeClient::new(&url).status());
    assert!(reason.to_lowercase().contains("certificate"), "{reason}");
    let other = tempfile::tempdir()?;
    xinlian_devnet::tls::node_tls(other.path(), "x")?;
    let stranger =
        NodeClient::new(&url).trusting_file(&xinlian_devnet::tls::ca_path(other.path()))?;
    let reason = unreachable(stranger.status());
    assert!(reason.to_lowercase().contains("certificate"), "{reason}");
    // Plain HTTP to the TLS port gets no HTTP answer.
    unreachable(NodeClient::new(&format!("http://127.0.0.1:{port}")).status());

    // Forty connections that never send a byte, and ten that send half a hello: each
    // holds one connection slot, none holds the door.
    let addr = format!("127.0.0.1:{port}");
    let opened = Instant::now();
    let mut silent: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(&addr))
        .collect::<Result<_, _>>()?;
    for _ in 0..10 {
        let mut s = TcpStream::connect(&addr)?;
        // A TLS record header announcing a 512-byte handshake message, then nothing.
        std::io::Write::write_all(&mut s, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])?;
        silent.push(s);
    }
    // A new client: a new connection and handshake, not one kept from before.
    let fresh = NodeClient::new(&url).trusting_file(&ca)?;
    let asked = Instant::now();
    fresh.status()?;
    let answered = asked.elapsed();
    assert!(
        answered < HANDSHAKE_TIME / 4,
        "a client waited {answered:?} behind unfinished handshakes"
    );

    // Twenty more take the open connections past the cap of 64: at most 14 fit, so
    // at least six are refused — closed without a byte (no plaintext 503 on a TLS port).
    let extra: Vec<TcpStream> = (0..20)
        .map(|_| {
            let s = TcpStream::connect(&addr)?;
            s.set_nonblocking(true)?;
            Ok(s)
        })
        .collect::<std::io::Result<_>>()?;
    let mut closed = vec![false; extra.len()];
    let deadline = Instant::now() + Duration::from_secs(4);
    while closed.iter().filter(|c| **c).count() < 6 && Instant::now() < deadline {
        for (s, c) in extra.iter().zip(closed.iter_mut()).filter(|(_, c)| !**c) {
            let mut byte = [0u8; 1];
            match (&*s).read(&mut byte) {
                Ok(0) => *c = true,
                Ok(_) => panic!("a connection over the cap was sent bytes in clear"),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => *c = true,
                Err(e) => return Err(e.into()),
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let refused = closed.iter().filter(|c| **c).count();
    assert!(
        refused >= 6,
        "only {refused} of 20 connections over the cap were closed"
    );
    drop(extra);

    // The node closes each of them once the handshake time is up, not before: a
    // few seconds before it, every one is still open (a read would block).
    std::thread::sleep(
        (opened + HANDSHAKE_TIME - Duration::from_secs(3))
            .saturating_duration_since(Instant::now()),
    );
    for s in &silent {
        s.set_nonblocking(true)?;
        let mut byte = [0u8; 1];
        let e = (&*s)
            .read(&mut byte)
            .expect_err("an unfinished handshake closed early");
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
        s.set_nonblocking(false)?;
    }
    for s in &mut silent {
        s.set_read_timeout(Some(HANDSHAKE_TIME * 2))?;
        let mut byte = [0u8; 1];
        let closed = match s.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(closed, "an unfinished handshake was left open");
    }
    let held = opened.elapsed();
    assert!(
        held >= HANDSHAKE_TIME - Duration::from_millis(500),
        "unfinished handshakes were closed after {held:?}, before the handshake time"
    );
    assert!(held < HANDSHAKE_TIME * 2, "closed only after {held:?}");
    // And it still serves.
    node.client.status()?;
    Ok(())
}
