//! Bulk submission (`POST /v1/records/bulk`, issue 20): one request, a verdict per
//! record in the order sent, and only what was admitted lands; a body that does not
//! parse changes nothing; a full mempool refuses the rest of a request untried, and
//! `xinlian submit-signed` sends those again until all are in.

use std::io::Write as _;
use std::time::Duration;

use xinlian_client::http::{ClientError, NodeClient};
use xinlian_client::ids::Uscc;
use xinlian_client::record::{EncodedRecord, RecordId, SignedRecord};
use xinlian_client::signer::RecordSigner;
use xinlian_genesis::{Hash32, Policy, keys};
use xinlian_tests::{Consortium, commission, register_enterprise};

const BIN: &str = env!("CARGO_BIN_EXE_xinlian-node-under-test");
const CLI: &str = env!("CARGO_BIN_EXE_xinlian-under-test");

fn farm(c: &Consortium, client: &NodeClient) -> anyhow::Result<RecordSigner> {
    let uscc = Uscc::with_check("91310117MA1G0A1B2").unwrap();
    Ok(register_enterprise(c, client, uscc, keys::generate()?)?.0)
}

fn not_found(client: &NodeClient, id: &RecordId) -> bool {
    matches!(
        client.record(id, 0),
        // To the public, an absent record and a hidden one answer alike.
        Err(ClientError::Refused { code, .. }) if code == "not_visible"
    )
}

fn post(client: &NodeClient, content_type: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let url = format!(
        "{}/v1/records/bulk",
        client.base_url().trim_end_matches('/')
    );
    let answer = ureq::post(&url)
        .header("content-type", content_type)
        .config()
        .http_status_as_error(false)
        .build()
        .send(body)
        .expect("the node answers");
    let status = answer.status().as_u16();
    let body = answer.into_body().read_json().expect("a JSON answer");
    (status, body)
}

#[test]
fn a_bulk_request_answers_each_record_and_only_the_valid_ones_land() -> anyhow::Result<()> {
    let c = Consortium::new(BIN)?;
    let node = c.start()?;
    let farm = farm(&c, &node.client)?;
    let good = farm.sign(commission("bulk-0"));
    let mut forged = farm.sign(commission("bulk-forged"));
    forged.signature.0[7] ^= 1;
    let foreign = RecordSigner {
        key: farm.key.clone(),
        chain: Hash32([9; 32]),
    }
    .sign(commission("bulk-foreign"));
    // The same batch again, signed afresh: the first one, admitted just before it in
    // the same request, already commissioned it.
    let again = farm.sign(commission("bulk-0"));
    let last = farm.sign(commission("bulk-1"));
    let sent: Vec<EncodedRecord> = [&good, &forged, &foreign, &good, &again, &last]
        .into_iter()
        .map(|r| EncodedRecord::new(r.clone()))
        .collect();
    let answer = node.client.submit_many(&sent)?;
    let codes: Vec<Option<&str>> = answer.results.iter().map(|r| r.code.as_deref()).collect();
    assert_eq!(
        codes,
        [
            None,
            Some("bad_signature"),
            Some("wrong_chain"),
            Some("duplicate"),
            Some("already_exists"),
            None
        ],
        "{answer:?}"
    );
    let ids: Vec<RecordId> = answer.results.iter().map(|r| r.id).collect();
    assert_eq!(ids, sent.iter().map(EncodedRecord::id).collect::<Vec<_>>());
    assert!(answer.results[1..5].iter().all(|r| r.message.is_some()));
    // The admitted ones become final; the others were never taken.
    for r in [&good, &last] {
        let v = node.client.record(&r.id(), 10_000)?;
        assert!(v.height.is_some(), "{} not final", r.id());
    }
    for r in [&forged, &foreign, &again] {
        assert!(not_found(&node.client, &r.id()), "{} landed", r.id());
    }

    // The JSON body: a list of signed records.
    let fresh = farm.sign(commission("bulk-json"));
    let (status, body) = post(
        &node.client,
        "application/json",
        &serde_json::to_vec(&[&fresh, &forged])?,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(2), "{body}");
    assert_eq!(body["results"][0]["code"], serde_json::Value::Null);
    assert_eq!(body["results"][1]["code"], "bad_signature");
    assert!(node.client.record(&fresh.id(), 10_000)?.height.is_some());

    // A body that does not parse is refused whole: the good record in it is not taken.
    let unsent = farm.sign(commission("bulk-unsent"));
    let mut junk = xinlian_client::bulk::encode(&[EncodedRecord::new(unsent.clone())]);
    junk.extend_from_slice(&[3, 1, 2]);
    let (status, body) = post(&node.client, "application/octet-stream", &junk);
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("malformed")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("the record at index 1:"),
        "{body}"
    );
    let (status, body) = post(&node.client, "application/json", b"[]");
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("bad_query")),
        "{body}"
    );
    let many: Vec<EncodedRecord> = (0..1001)
        .map(|i| EncodedRecord::new(farm.sign(commission(&format!("bulk-many-{i}")))))
        .collect();
    let (status, body) = post(
        &node.client,
        "application/octet-stream",
        &xinlian_client::bulk::encode(&many),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("bad_query")),
        "{body}"
    );
    let (status, body) = post(&node.client, "text/plain", b"x");
    assert_eq!(
        (status, body["code"].as_str()),
        (415, Some("content_type")),
        "{body}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        not_found(&node.client, &unsent.id()),
        "a refused body landed"
    );
    assert!(
        not_found(&node.client, &many[0].id()),
        "a refused body landed"
    );
    Ok(())
}

#[test]
fn a_full_mempool_refuses_the_rest_in_order_and_the_cli_sends_them_again() -> anyhow::Result<()> {
    // A mempool of 2 × 10 records.
    let policy = Policy {
        block_interval_ms: 50,
        block_records_max: 10,
        ..Policy::default()
    };
    let c = Consortium::with_policy(BIN, 1, 0, policy)?;
    let node = c.start()?;
    let farm = farm(&c, &node.client)?;
    let records: Vec<SignedRecord> = (0..60)
        .map(|i| farm.sign(commission(&format!("full-{i}"))))
        .collect();
    let encoded: Vec<EncodedRecord> = records[..50]
        .iter()
        .map(|r| EncodedRecord::new(r.clone()))
        .collect();
    let url = format!(
        "{}/v1/records/bulk",
        node.client.base_url().trim_end_matches('/')
    );
    let answer = ureq::post(&url)
        .header("content-type", "application/octet-stream")
        .send(&xinlian_client::bulk::encode(&encoded)[..])?;
    let retry_after = answer
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or("").to_string());
    let answer: xinlian_client::api::SubmittedRecords = answer.into_body().read_json()?;
    let codes: Vec<Option<&str>> = answer.results.iter().map(|r| r.code.as_deref()).collect();
    // What got in is a prefix: once one was turned away, all after it were.
    let admitted = codes.iter().take_while(|c| c.is_none()).count();
    assert!((1..=20).contains(&admitted), "{codes:?}");
    assert!(
        codes[admitted..].iter().all(|c| *c == Some("mempool_full")),
        "{codes:?}"
    );
    assert_eq!(retry_after.as_deref(), Some("1"));

    // The CLI submits all 60 — the ones already in (`duplicate`: counted in), the
    // refused ones again, and 10 more — through a mempool of 20, waiting it out.
    let file = c.path().join("signed.jsonl");
    let mut f = std::fs::File::create(&file)?;
    for r in &records {
        writeln!(f, "{}", serde_json::to_string(r)?)?;
    }
    drop(f);
    let out = std::process::Command::new(CLI)
        .args(["--node", node.client.base_url(), "--json", "submit-signed"])
        .arg(&file)
        .arg("--wait")
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(printed["submitted"], 60);
    for r in &records {
        let v = node.client.record(&r.id(), 10_000)?;
        assert!(v.height.is_some(), "{} not final", r.id());
    }
    Ok(())
}
