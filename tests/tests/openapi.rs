//! The OpenAPI document a node serves describes what it really answers: every request
//! below, good and bad, gets a status the document lists for that operation, and a
//! body that validates against the schema the document gives for it. Errors are JSON
//! with a stable code.

use serde_json::Value;
use xinlian_client::ids::Uscc;
use xinlian_client::record::{EncodedRecord, RotateEntityKey};
use xinlian_genesis::keys;
use xinlian_tests::{commission, register_enterprise};

struct Call {
    method: &'static str,
    /// The documented path template.
    template: &'static str,
    url: String,
    body: Option<(&'static str, Vec<u8>)>,
    status: u16,
    /// For errors: the stable code expected.
    code: Option<&'static str>,
}

fn get(template: &'static str, url: String, status: u16, code: Option<&'static str>) -> Call {
    Call {
        method: "get",
        template,
        url,
        body: None,
        status,
        code,
    }
}

fn post(
    url: String,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    code: Option<&'static str>,
) -> Call {
    Call {
        method: "post",
        template: "/v1/records",
        url,
        body: Some((content_type, body)),
        status,
        code,
    }
}

fn post_to(
    template: &'static str,
    url: String,
    body: &str,
    status: u16,
    code: Option<&'static str>,
) -> Call {
    Call {
        template,
        ..post(
            url,
            "application/json",
            body.as_bytes().to_vec(),
            status,
            code,
        )
    }
}

/// `call`, made to `/v1/records/bulk`.
fn to_bulk(call: Call) -> Call {
    Call {
        template: "/v1/records/bulk",
        ..call
    }
}

/// A validator for the schema at `pointer` (`#/components/schemas/…`) of the document.
fn validator(doc: &Value, pointer: &str) -> anyhow::Result<jsonschema::Validator> {
    let root = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": pointer,
        "components": doc["components"],
    });
    Ok(jsonschema::validator_for(&root)?)
}

#[test]
fn every_answer_matches_the_served_openapi_document() -> anyhow::Result<()> {
    let c = xinlian_tests::consortium!()?;
    let node = c.start()?;
    let client = &node.client;
    let uscc = Uscc::with_check("91310117MA1G0A1B2").unwrap();
    let (farm, registration) = register_enterprise(&c, client, uscc.clone(), keys::generate()?)?;
    let k2 = keys::generate()?;
    let rotated = farm.sign(RotateEntityKey {
        uscc: uscc.clone(),
        new_key: keys::public_key(&k2),
        possession: xinlian_client::crypto::prove_possession(
            &k2,
            &farm.chain,
            xinlian_client::crypto::KeyHolder::Enterprise(uscc.as_str()),
        ),
    });
    let ready = farm.sign(commission("b1"));
    let spare = farm.sign(commission("b2"));
    let bulk_fresh = farm.sign(commission("b3"));
    let base = client.base_url().to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let doc: Value = agent
        .get(&format!("{base}/v1/openapi.json"))
        .call()?
        .body_mut()
        .read_json()?;
    let status = client.status()?;

    let calls = vec![
        get("/v1/status", format!("{base}/v1/status"), 200, None),
        get(
            "/v1/openapi.json",
            format!("{base}/v1/openapi.json"),
            200,
            None,
        ),
        post(
            format!("{base}/v1/records?wait_ms=10000"),
            "application/octet-stream",
            ready.canonical_bytes(),
            200,
            None,
        ),
        // A wait over the bound is refused before the record is looked at: the same
        // record is then admitted (202), not a duplicate.
        post(
            format!("{base}/v1/records?wait_ms=30001"),
            "application/json",
            serde_json::to_vec(&spare)?,
            400,
            Some("bad_query"),
        ),
        post(
            format!("{base}/v1/records"),
            "application/json",
            serde_json::to_vec(&spare)?,
            202,
            None,
        ),
        post(
            format!("{base}/v1/records"),
            "application/octet-stream",
            ready.canonical_bytes(),
            409,
            Some("duplicate"),
        ),
        post(
            format!("{base}/v1/records"),
            "application/octet-stream",
            vec![0xff; 40],
            400,
            Some("malformed"),
        ),
        post(
            format!("{base}/v1/records"),
            "text/plain",
            b"hello".to_vec(),
            415,
            Some("content_type"),
        ),
        // Over the genesis record bound but within the request bound, so the node reads
        // it all and answers (a far larger body is cut off with 413 while the client is
        // still sending, which no client can read reliably).
        post(
            format!("{base}/v1/records"),
            "application/octet-stream",
            vec![0; 20_000],
            400,
            Some("oversize"),
        ),
        post(
            format!("{base}/v1/records?wait_ms=10000"),
            "application/octet-stream",
            rotated.canonical_bytes(),
            200,
            None,
        ),
        get(
            "/v1/records/{id}",
            format!("{base}/v1/records/{registration}"),
            200,
            None,
        ),
        get(
            "/v1/records/{id}",
            format!("{base}/v1/records/xyz"),
            400,
            Some("bad_id"),
        ),
        get(
            "/v1/records/{id}",
            format!("{base}/v1/records/{registration}?wait_ms=30001"),
            400,
            Some("bad_query"),
        ),
        get(
            "/v1/records/{id}",
            format!("{base}/v1/records/{}", "00".repeat(32)),
            404,
            Some("not_visible"),
        ),
        get(
            "/v1/records/{id}/proof",
            format!("{base}/v1/records/{}/proof", ready.id()),
            200,
            None,
        ),
        get(
            "/v1/records/{id}/proof",
            format!("{base}/v1/records/{}/proof?at=1", ready.id()),
            409,
            Some("after_checkpoint"),
        ),
        get(
            "/v1/records/{id}/proof",
            format!("{base}/v1/records/{}/proof?at=x", ready.id()),
            400,
            Some("bad_query"),
        ),
        get(
            "/v1/records/{id}/proof",
            format!("{base}/v1/records/{}/proof", "00".repeat(32)),
            404,
            Some("not_visible"),
        ),
        get(
            "/v1/ledger/consistency",
            format!("{base}/v1/ledger/consistency?first=1&second=2"),
            200,
            None,
        ),
        get(
            "/v1/ledger/consistency",
            format!("{base}/v1/ledger/consistency?first=0&second=2"),
            400,
            Some("bad_sizes"),
        ),
        get(
            "/v1/ledger/consistency",
            format!("{base}/v1/ledger/consistency?first=1&second=9999"),
            400,
            Some("bad_sizes"),
        ),
        get(
            "/v1/ledger/consistency",
            format!("{base}/v1/ledger/consistency?first=a"),
            400,
            Some("bad_query"),
        ),
        get(
            "/v1/rosters",
            format!("{base}/v1/rosters?after=1"),
            200,
            None,
        ),
        get("/v1/roster", format!("{base}/v1/roster"), 200, None),
        get(
            "/v1/governance/proposals",
            format!("{base}/v1/governance/proposals?status=open&limit=5"),
            200,
            None,
        ),
        get(
            "/v1/governance/proposals",
            format!("{base}/v1/governance/proposals?status=maybe"),
            400,
            Some("bad_query"),
        ),
        get(
            "/v1/governance/proposals/{id}",
            format!("{base}/v1/governance/proposals/{}", "00".repeat(32)),
            404,
            Some("not_found"),
        ),
        get(
            "/v1/governance/proposals/{id}",
            format!("{base}/v1/governance/proposals/xyz"),
            400,
            Some("bad_id"),
        ),
        get(
            "/v1/blocks/{height}",
            format!("{base}/v1/blocks/{}", status.height.max(1)),
            200,
            None,
        ),
        get(
            "/v1/blocks/{height}",
            format!("{base}/v1/blocks/99999"),
            404,
            Some("not_found"),
        ),
        get(
            "/v1/blocks/{height}",
            format!("{base}/v1/blocks/top"),
            400,
            Some("bad_height"),
        ),
        get(
            "/v1/enterprises/{uscc}",
            format!("{base}/v1/enterprises/{uscc}?limit=1"),
            200,
            None,
        ),
        get(
            "/v1/enterprises/{uscc}",
            format!("{base}/v1/enterprises/{uscc}?limit=0"),
            400,
            Some("bad_query"),
        ),
        get(
            "/v1/enterprises/{uscc}",
            format!("{base}/v1/enterprises/9131-bad"),
            400,
            Some("invalid_identifier"),
        ),
        get(
            "/v1/enterprises/{uscc}",
            format!("{base}/v1/enterprises/91310117MA1G0A1B3X"),
            404,
            Some("not_found"),
        ),
        get(
            "/v1/batches/{batch}",
            format!("{base}/v1/batches/b1"),
            200,
            None,
        ),
        get(
            "/v1/batches/{batch}",
            format!("{base}/v1/batches/none"),
            404,
            Some("not_found"),
        ),
        get(
            "/v1/batches/{batch}/provenance",
            format!("{base}/v1/batches/b1/provenance?direction=both"),
            200,
            None,
        ),
        get(
            "/v1/batches/{batch}/provenance",
            format!("{base}/v1/batches/b1/provenance?direction=sideways"),
            400,
            Some("bad_query"),
        ),
        get(
            "/v1/batches/{batch}/provenance",
            format!("{base}/v1/batches/b1/provenance?depth=5000"),
            400,
            Some("bad_query"),
        ),
        get(
            "/v1/batches/{batch}/provenance",
            format!("{base}/v1/batches/none/provenance"),
            404,
            Some("not_found"),
        ),
        get(
            "/v1/batches/{batch}/epcis",
            format!("{base}/v1/batches/b1/epcis"),
            200,
            None,
        ),
        get(
            "/v1/batches/{batch}/epcis",
            format!("{base}/v1/batches/none/epcis"),
            404,
            Some("not_found"),
        ),
        post_to(
            "/v1/provenance",
            format!("{base}/v1/provenance"),
            r#"{"roots": ["b1"], "direction": "downstream", "max_batches": 1}"#,
            200,
            None,
        ),
        post_to(
            "/v1/provenance",
            format!("{base}/v1/provenance"),
            r#"{"roots": []}"#,
            400,
            Some("bad_query"),
        ),
        post_to(
            "/v1/provenance",
            format!("{base}/v1/provenance"),
            "{",
            400,
            Some("malformed_json"),
        ),
        post_to(
            "/v1/records/check",
            format!("{base}/v1/records/check"),
            &serde_json::to_string(&[&spare, &ready])?,
            200,
            None,
        ),
        post_to(
            "/v1/records/check",
            format!("{base}/v1/records/check"),
            "[]",
            400,
            Some("bad_query"),
        ),
        // Bulk: per-record verdicts (a duplicate and a fresh one), and refusals whole.
        to_bulk(post(
            format!("{base}/v1/records/bulk"),
            "application/octet-stream",
            xinlian_client::bulk::encode(&[
                EncodedRecord::new(ready.clone()),
                EncodedRecord::new(bulk_fresh.clone()),
            ]),
            200,
            None,
        )),
        to_bulk(post(
            format!("{base}/v1/records/bulk"),
            "application/json",
            serde_json::to_vec(&[&bulk_fresh])?,
            200,
            None,
        )),
        to_bulk(post(
            format!("{base}/v1/records/bulk"),
            "application/octet-stream",
            vec![0x05, 1, 2],
            400,
            Some("malformed"),
        )),
        to_bulk(post(
            format!("{base}/v1/records/bulk"),
            "text/plain",
            b"x".to_vec(),
            415,
            Some("content_type"),
        )),
    ];
    for call in &calls {
        let resp = match &call.body {
            None => agent.get(&call.url).call(),
            Some((ct, body)) => agent
                .post(&call.url)
                .header("content-type", *ct)
                .send(&body[..]),
        };
        let mut resp = resp?;
        let got = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_string()?;
        assert_eq!(got, call.status, "{} {}: {text}", call.method, call.url);
        let op = &doc["paths"][call.template][call.method];
        let documented = &op["responses"][got.to_string()];
        assert!(
            documented.is_object(),
            "{} {} answered {got}, which the document does not list",
            call.method,
            call.template
        );
        let content = documented["content"]
            .as_object()
            .and_then(|c| c.values().next())
            .cloned()
            .unwrap_or_default();
        let schema = &content["schema"];
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} {}: not JSON ({e}): {text}", call.method, call.url));
        if let Some(name) = schema["$ref"].as_str() {
            let validator = validator(&doc, name)?;
            let errors: Vec<String> = validator
                .iter_errors(&body)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{} {}: {errors:?}\n{text}",
                call.method,
                call.url
            );
        }
        if let Some(code) = call.code {
            assert_eq!(body["code"], code, "{} {}: {text}", call.method, call.url);
        }
    }
    // The schemas do constrain: a wrong answer is caught.
    let status_schema = validator(&doc, "#/components/schemas/Status")?;
    let mut wrong = serde_json::to_value(client.status()?)?;
    assert!(status_schema.is_valid(&wrong));
    wrong["tip_hash"] = "not hex".into();
    assert!(!status_schema.is_valid(&wrong));

    // Paging: one record per page, and the cursor leads through all of them.
    let mut seen = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let url = match after {
            Some(a) => format!("{base}/v1/enterprises/{uscc}?limit=1&after={a}"),
            None => format!("{base}/v1/enterprises/{uscc}?limit=1"),
        };
        let v: Value = agent.get(&url).call()?.body_mut().read_json()?;
        seen.extend(v["records"].as_array().unwrap().iter().cloned());
        match v["next_after"].as_u64() {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    let all: Value = agent
        .get(&format!("{base}/v1/enterprises/{uscc}"))
        .call()?
        .body_mut()
        .read_json()?;
    assert_eq!(&Value::Array(seen), &all["records"]);
    assert!(all["records"].as_array().unwrap().len() >= 4);
    Ok(())
}
