//! Graded disclosure on a real node (docs/privacy.md): every route × every kind of
//! reader × every disclosure level and publication state. Nothing leaks (a hidden
//! record answers as a missing one to whoever may not know it exists), everything
//! entitled is served; request signatures that are bad, replayed, expired, early, for
//! an unknown key or malformed are refused with their own codes; every answer to a
//! signed reader is in the node's access log, whose chain `xinlian-node access-log`
//! checks; pending records are never public.

use std::collections::BTreeMap;

use anyhow::{Result, ensure};
use xinlian_client::disclosure::Reader;
use xinlian_client::events::EventFilter;
use xinlian_client::http::{ClientError, NodeClient, RequestSigner};
use xinlian_client::ids::Uscc;
use xinlian_client::proof::LightClient;
use xinlian_client::record::*;
use xinlian_client::state::CommitmentStatus;
use xinlian_client::when::Date;
use xinlian_genesis::keys::{self, SigningKey};
use xinlian_genesis::scaffold::MemberSpec;
use xinlian_genesis::{Policy, Role};
use xinlian_tests::{Consortium, Node, commission, register_enterprise};

fn specs() -> Vec<MemberSpec> {
    let member = |id: &str, roles: Vec<Role>, power: u64| MemberSpec {
        id: id.into(),
        name: id.into(),
        region: "310000".into(),
        roles,
        voting_power: power,
    };
    vec![
        // The accepting agency of every commitment here.
        member(
            "v0",
            vec![Role::Validator, Role::CreditAuthority("market".into())],
            1,
        ),
        member(
            "registrar",
            vec![Role::Registrar, Role::TraceAuthority("food".into())],
            0,
        ),
        // Named on the agencies-only commitment.
        member(
            "named",
            vec![Role::Observer, Role::CreditAuthority("tax".into())],
            0,
        ),
        // A member nothing is addressed to.
        member("other", vec![Role::Observer], 0),
    ]
}

/// The members above, with blocks every 50 ms.
fn consortium() -> Result<Consortium> {
    Consortium::with_members(
        env!("CARGO_BIN_EXE_xinlian-node-under-test"),
        &specs(),
        Policy {
            block_interval_ms: 50,
            ..Policy::default()
        },
    )
}

/// The records of the scenario, by name, and who may read each.
struct Scenario {
    c: Consortium,
    node: Node,
    e1: Uscc,
    e1_key: SigningKey,
    e2: Uscc,
    e2_key: SigningKey,
    records: BTreeMap<&'static str, RecordId>,
}

fn final_id(client: &NodeClient, rec: &SignedRecord) -> Result<RecordId> {
    let v = client.submit_and_wait(rec, 10_000)?;
    ensure!(v.height.is_some(), "record {} not final in 10 s", v.id);
    Ok(v.id)
}

fn today_of(client: &NodeClient) -> Result<Date> {
    Ok(Date::of_ms_beijing(client.status()?.tip_time_ms))
}

fn commitment(subject: &Uscc, disclosure: Disclosure, date: Date, matter: &str) -> Commitment {
    Commitment {
        subject: subject.clone(),
        kind: CommitmentKind::VoluntaryPublic,
        matter: matter.into(),
        legal_basis: "沪府办〔2026〕1号".into(),
        template_version: "v1".into(),
        accepting_agency: "v0".into(),
        domain: "market".into(),
        content: Content::Document(xinlian_genesis::Hash32([4; 32])),
        date,
        deadline: date.plus_days(10),
        disclosure,
        publication_consent: true,
    }
}

fn outcome(commitment: RecordId, verdict: Verdict, date: Date) -> Outcome {
    Outcome {
        commitment,
        verdict,
        method: "on-site inspection".into(),
        evidence: None,
        document: "沪市监〔2026〕7号".into(),
        date,
    }
}

// Long: the scenario is one list of records, each named for the matrix.
fn scenario() -> Result<Scenario> {
    let c = consortium()?;
    let node = c.start()?;
    let client = &node.client;
    let (e1, e1_key) = (
        Uscc::with_check("91310117MA1G0A1B2").unwrap(),
        keys::generate()?,
    );
    let (e2, e2_key) = (
        Uscc::with_check("91310117MA1G0A1C3").unwrap(),
        keys::generate()?,
    );
    let (ent, reg1) = register_enterprise(&c, client, e1.clone(), e1_key.clone())?;
    let (farm, _) = register_enterprise(&c, client, e2.clone(), e2_key.clone())?;
    let agency = c.agency("v0")?;
    let today = today_of(client)?;
    let back = |days: u32| Date(today.0 - days as i32);
    let mut records = BTreeMap::new();
    records.insert("registration", reg1);
    let mut commit = |name: &'static str, d: Disclosure, date: Date| -> Result<RecordId> {
        let id = final_id(client, &ent.sign(commitment(&e1, d, date, name)))?;
        records.insert(name, id);
        Ok(id)
    };
    let public = commit("public", Disclosure::Public, back(30))?;
    commit("consortium", Disclosure::Consortium, back(30))?;
    commit(
        "named",
        Disclosure::Agencies(vec!["named".into()]),
        back(30),
    )?;
    let recent = commit("general_recent", Disclosure::Public, back(60))?;
    // A general breach is published for 365 days: one determined 364 days ago is
    // public until tomorrow, one 365 days ago stopped being public today.
    let last_day = commit("general_last_day", Disclosure::Public, back(400))?;
    let ended = commit("general_ended", Disclosure::Public, back(400))?;
    let minor = commit("minor", Disclosure::Public, back(30))?;
    let repaired = commit("general_repaired", Disclosure::Public, back(200))?;
    let mut decide = |name: &'static str, rec: SignedRecord| -> Result<RecordId> {
        let id = final_id(client, &rec)?;
        records.insert(name, id);
        Ok(id)
    };
    let kept = decide(
        "public_outcome",
        agency.sign(outcome(public, Verdict::Fulfilled, back(5))),
    )?;
    let general = Verdict::Breached(Severity::General);
    decide(
        "general_recent_outcome",
        agency.sign(outcome(recent, general, back(10))),
    )?;
    decide(
        "general_last_day_outcome",
        agency.sign(outcome(last_day, general, back(364))),
    )?;
    decide(
        "general_ended_outcome",
        agency.sign(outcome(ended, general, back(365))),
    )?;
    let minor_verdict = Verdict::Breached(Severity::Minor);
    decide(
        "minor_outcome",
        agency.sign(outcome(minor, minor_verdict, back(1))),
    )?;
    // Repaired past the 90-day minimum: publication ends on the decision's date, today.
    let breach = decide(
        "general_repaired_outcome",
        agency.sign(outcome(repaired, general, back(100))),
    )?;
    let application = decide(
        "repair_application",
        ent.sign(RepairApplication {
            outcome: breach,
            pledge: Content::Document(xinlian_genesis::Hash32([5; 32])),
            evidence: Vec::new(),
            date: today,
        }),
    )?;
    decide(
        "repair_decision",
        agency.sign(RepairDecision {
            application,
            approved: true,
            reason: "rectified".into(),
            date: today,
        }),
    )?;
    // Another enterprise's batch (public), then a listing everyone may read: the last
    // record about the enterprise, so that every reader's stream ends at the tip.
    decide("batch", farm.sign(commission("lot-1")))?;
    decide(
        "reward_listing",
        agency.sign(ListMeasure {
            subject: e1.clone(),
            list: ListKind::Reward,
            action: ListAction::Add,
            domain: "market".into(),
            basis: vec![kept],
            reason: "kept its commitments".into(),
            date: today,
        }),
    )?;
    ensure!(
        today_of(client)? == today,
        "the day changed while the scenario was made; run again"
    );
    Ok(Scenario {
        c,
        node,
        e1,
        e1_key,
        e2,
        e2_key,
        records,
    })
}

impl Scenario {
    fn client(&self, reader: &Reader) -> Result<NodeClient> {
        let base = self.node.client.unsigned();
        let (keyid, key) = match reader {
            Reader::Public => return Ok(base),
            Reader::Enterprise(u) if u == &self.e1 => {
                (format!("enterprise:{}", u.as_str()), self.e1_key.clone())
            }
            Reader::Enterprise(u) => (format!("enterprise:{}", u.as_str()), self.e2_key.clone()),
            Reader::Member(m) => (format!("member:{m}"), self.c.agency(m)?.key),
            Reader::Custody(_) => anyhow::bail!("the matrix has no custody reader"),
        };
        Ok(base.signed_by(RequestSigner { keyid, key }))
    }

    fn readers(&self) -> Vec<Reader> {
        vec![
            Reader::Public,
            Reader::Enterprise(self.e1.clone()),
            Reader::Enterprise(self.e2.clone()),
            Reader::Member("v0".into()),
            Reader::Member("named".into()),
            Reader::Member("other".into()),
        ]
    }

    /// Who may read each record, written out by hand from docs/privacy.md (not from the
    /// policy code under test).
    fn entitled(&self, name: &str, r: &Reader) -> bool {
        let subject = *r == Reader::Enterprise(self.e1.clone());
        let member = |ids: &[&str]| matches!(r, Reader::Member(m) if ids.contains(&m.as_str()));
        let everyone = true;
        match name {
            "registration" | "public" | "public_outcome" | "batch" | "reward_listing" => everyone,
            "general_recent" | "general_recent_outcome" => everyone,
            "general_last_day" | "general_last_day_outcome" => everyone,
            "consortium" => subject || matches!(r, Reader::Member(_)),
            "named" => subject || member(&["v0", "named"]),
            // Publication over (ended, never for minor breaches, ended by repair):
            // the subject and the consortium only.
            "general_ended"
            | "general_ended_outcome"
            | "minor"
            | "minor_outcome"
            | "general_repaired"
            | "general_repaired_outcome"
            | "repair_application"
            | "repair_decision" => subject || matches!(r, Reader::Member(_)),
            other => panic!("no expectation for {other}"),
        }
    }
}

fn refused(r: std::result::Result<impl std::fmt::Debug, ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::Refused { status, code, .. }) => (status, code),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Every record × every reader, for the record, its proof and the enterprise's page
/// and stream; a record that does not exist answers exactly as a hidden one.
#[test]
fn each_reader_sees_exactly_what_it_is_entitled_to() -> Result<()> {
    let s = scenario()?;
    let light = LightClient::new(s.c.genesis.clone());
    let missing = RecordId([7; 32]);
    for reader in s.readers() {
        let client = s.client(&reader)?;
        let label = reader.label();
        for (name, id) in &s.records {
            let entitled = s.entitled(name, &reader);
            match (
                entitled,
                client.record(id, 0),
                client.record_proof(id, None),
            ) {
                (true, Ok(v), Ok(p)) => {
                    assert_eq!(v.id, *id, "{label} {name}");
                    // Members and the subject verify what they may read, hidden from
                    // the public or not.
                    light.verify_record(&p)?;
                }
                (false, r, p) => {
                    let want = if reader.knows_every_leaf() { 403 } else { 404 };
                    assert_eq!(refused(r), (want, "not_visible".into()), "{label} {name}");
                    assert_eq!(
                        refused(p),
                        (want, "not_visible".into()),
                        "{label} {name} proof"
                    );
                }
                (true, r, p) => panic!("{label} may read {name}: {r:?} {p:?}"),
            }
        }
        let none = refused(client.record(&missing, 0));
        let want = if reader.knows_every_leaf() {
            "not_found"
        } else {
            "not_visible"
        };
        assert_eq!(
            (none.0, none.1.as_str()),
            (404, want),
            "{label}: a record that does not exist"
        );
        if !reader.knows_every_leaf() && !s.entitled("minor", &reader) {
            // The same message too, but for the id: nothing tells the two apart.
            let hidden = s.records["minor"];
            let a = format!("{:?}", client.record(&hidden, 0).unwrap_err());
            let b = format!("{:?}", client.record(&missing, 0).unwrap_err());
            assert_eq!(
                a.replace(&hidden.to_string(), "ID"),
                b.replace(&missing.to_string(), "ID"),
                "{label}"
            );
        }
        check_enterprise(&s, &reader, &client)?;
        check_stream(&s, &reader, &client)?;
        // Public routes serve everyone: blocks, status, batches, provenance, EPCIS,
        // rosters and governance.
        client.block(1)?;
        client.status()?;
        client.batch("lot-1")?;
        let p = client.provenance("lot-1", xinlian_client::provenance::Direction::Both, None)?;
        light.verify_provenance(&p)?;
        assert_eq!(
            get_as(&s, &reader, "/v1/batches/lot-1/epcis")?,
            200,
            "{label}: EPCIS"
        );
        client.roster()?;
        client.roster_changes(0)?;
        client.proposals(None)?;
    }
    Ok(())
}

fn check_enterprise(s: &Scenario, reader: &Reader, client: &NodeClient) -> Result<()> {
    let label = reader.label();
    let page = client.enterprise(s.e1.as_str())?;
    let shown: Vec<&str> = s
        .records
        .iter()
        .filter(|(_, id)| page.records.contains(id))
        .map(|(n, _)| *n)
        .collect();
    let expected: Vec<&str> = s
        .records
        .keys()
        .copied()
        .filter(|n| *n != "batch" && s.entitled(n, reader))
        .collect();
    assert_eq!(shown, expected, "{label}: the enterprise's records listed");
    assert_eq!(
        page.records.len(),
        expected.len(),
        "{label}: nothing else listed"
    );
    // The whole record: the enterprise itself, or a member every record of it is
    // disclosed to; never the public or another enterprise, whatever the records.
    let whole = match reader {
        Reader::Enterprise(u) => *u == s.e1,
        Reader::Public | Reader::Custody(_) => false,
        Reader::Member(_) => s.records.keys().all(|n| s.entitled(n, reader)),
    };
    assert_eq!(page.profile.is_some(), whole, "{label}: profile");
    assert_eq!(
        page.credit.is_some(),
        whole,
        "{label}: complete credit record"
    );
    for c in &page.commitments {
        assert!(
            page.records.contains(&c.id),
            "{label}: commitment {} not listed",
            c.id
        );
        if !whole {
            // Repair files are never shown to who may not read them all.
            assert!(
                c.open_repair.is_none() && c.repaired_by.is_none(),
                "{label}: {c:?}"
            );
            assert!(
                !matches!(c.status, CommitmentStatus::Repaired(_)),
                "{label}: {c:?}"
            );
        }
    }
    if *reader == Reader::Public {
        // Page by page, one record at a time: the pages make up the list, and no
        // cursor is a ledger position (they are enciphered).
        let (mut after, mut seen) = (None::<u64>, Vec::new());
        let size_now = client.status()?.ledger_size;
        loop {
            let q = after.map_or_else(String::new, |a| format!("&after={a}"));
            let v = raw_json(s, &format!("/v1/enterprises/{}?limit=1{q}", s.e1.as_str()))?;
            let ids: Vec<RecordId> = serde_json::from_value(v["records"].clone())?;
            seen.extend(ids.iter().copied());
            let Some(next) = v["next_after"].as_u64() else {
                break;
            };
            assert!(
                next >= size_now,
                "a cursor {next} that reads as a ledger position"
            );
            after = Some(next);
        }
        assert_eq!(seen, page.records, "the pages make up the whole list");
    }
    // Reasons never cite a record the reader may not read.
    for r in page.grade.reasons.iter().chain(&page.grade.caps) {
        if let Some(id) = r.record {
            let name = s.records.iter().find(|(_, v)| **v == id).map(|(n, _)| *n);
            assert!(
                page.records.contains(&id),
                "{label}: the grade cites {id} ({name:?}): {r:?}"
            );
        }
    }
    match client.credit(s.e1.as_str()) {
        Ok(proof) => {
            assert!(whole, "{label} got the complete credit record");
            LightClient::new(s.c.genesis.clone()).verify_credit(&s.e1, &proof)?;
        }
        Err(e) => {
            assert!(!whole, "{label}: {e}");
            assert_eq!(
                refused(Err::<(), _>(e)),
                (403, "not_entitled".into()),
                "{label}"
            );
        }
    }
    Ok(())
}

/// The enterprise's event stream carries exactly the records the reader may read.
fn check_stream(s: &Scenario, reader: &Reader, client: &NodeClient) -> Result<()> {
    let filter = EventFilter {
        enterprise: Some(s.e1.clone()),
        ..EventFilter::default()
    };
    let expected: Vec<RecordId> = s
        .records
        .iter()
        .filter(|(n, _)| **n != "batch" && s.entitled(n, reader))
        .map(|(_, id)| *id)
        .collect();
    let size = client.status()?.ledger_size;
    let mut stream = client.events(&filter, 0)?;
    let mut got = Vec::new();
    loop {
        let ev = stream.next_event()?;
        for r in &ev.records {
            got.push(SignedRecord::decode(&r.entry.record.0, usize::MAX)?.id());
        }
        if ev.checkpoint.header.ledger_size >= size {
            break;
        }
    }
    got.sort();
    let mut expected = expected;
    expected.sort();
    assert_eq!(got, expected, "{}: the enterprise's stream", reader.label());
    Ok(())
}

/// GET `path` as `reader` (signed unless the public): the status.
fn get_as(s: &Scenario, reader: &Reader, path: &str) -> Result<u16> {
    let headers = match reader {
        Reader::Public => Vec::new(),
        Reader::Custody(_) => anyhow::bail!("the matrix has no custody reader"),
        Reader::Enterprise(u) => {
            let key = if *u == s.e1 { &s.e1_key } else { &s.e2_key };
            RequestSigner {
                keyid: format!("enterprise:{}", u.as_str()),
                key: key.clone(),
            }
            .headers("GET", path, None)
        }
        Reader::Member(m) => RequestSigner {
            keyid: format!("member:{m}"),
            key: s.c.agency(m)?.key,
        }
        .headers("GET", path, None),
    };
    let h: Vec<(&str, String)> = headers.into_iter().collect();
    Ok(raw_get(s, path, &h)?.0)
}

/// An unsigned GET's JSON answer.
fn raw_json(s: &Scenario, path: &str) -> Result<serde_json::Value> {
    let url = format!("{}{path}", s.node.client.base_url());
    Ok(ureq::get(&url).call()?.body_mut().read_json()?)
}

/// Sends GET `path` with `headers`; the status and the error code, if any.
fn raw_get(s: &Scenario, path: &str, headers: &[(&str, String)]) -> Result<(u16, String)> {
    raw(s, "GET", path, headers, None)
}

fn raw(
    s: &Scenario,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<&[u8]>,
) -> Result<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}{path}", s.node.client.base_url());
    let mut resp = match body {
        None => {
            let mut req = agent.get(&url);
            for (n, v) in headers {
                req = req.header(*n, v);
            }
            req.call()?
        }
        Some(b) => {
            let mut req = agent.post(&url).header("content-type", "application/json");
            for (n, v) in headers {
                req = req.header(*n, v);
            }
            let _ = method;
            req.send(b)?
        }
    };
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string()?;
    let code = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(String::from))
        .unwrap_or_default();
    Ok((status, code))
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Headers of a signature made exactly as asked (for the refusals the client's own
/// signer would never produce).
fn signed(
    key: &SigningKey,
    keyid: &str,
    method: &str,
    path: &str,
    created: i64,
    expires: i64,
    components: &[&str],
) -> Vec<(&'static str, String)> {
    let nonce = format!("{:032x}", rand_nonce());
    let signer = RequestSigner {
        keyid: keyid.into(),
        key: key.clone(),
    };
    let what = xinlian_client::reqsig::SignRequest {
        keyid,
        created,
        expires,
        nonce: &nonce,
        components,
    };
    signer.headers_with(method, path, None, &what)
}

fn rand_nonce() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    (u128::from(std::process::id()) << 64) | u128::from(N.fetch_add(1, Ordering::Relaxed))
}

/// Each way a request signature can be wrong has its own code, and changes nothing:
/// the same request signed properly is then answered.
#[test]
fn bad_replayed_expired_unknown_and_malformed_signatures_are_refused() -> Result<()> {
    let s = scenario()?;
    let id = s.records["consortium"];
    let path = format!("/v1/records/{id}");
    let e1 = format!("enterprise:{}", s.e1.as_str());
    let member = s.c.agency("other")?.key;
    let all = ["@method", "@path", "@query"];
    let now = now_s();

    // Good, then the very same headers again: replayed.
    let good = signed(&s.e1_key, &e1, "GET", &path, now, now + 60, &all);
    assert_eq!(raw_get(&s, &path, &good)?, (200, String::new()));
    assert_eq!(
        raw_get(&s, &path, &good)?,
        (401, "signature_replayed".into())
    );
    // Signed by another key than the one the key id names; for another path.
    let wrong_key = signed(&s.e2_key, &e1, "GET", &path, now, now + 60, &all);
    assert_eq!(
        raw_get(&s, &path, &wrong_key)?,
        (401, "signature_invalid".into())
    );
    let other_path = signed(&s.e1_key, &e1, "GET", "/v1/status", now, now + 60, &all);
    assert_eq!(
        raw_get(&s, &path, &other_path)?,
        (401, "signature_invalid".into())
    );
    let other_query = signed(&s.e1_key, &e1, "GET", &path, now, now + 60, &all);
    let with_query = format!("{path}?wait_ms=0");
    assert_eq!(
        raw_get(&s, &with_query, &other_query)?,
        (401, "signature_invalid".into())
    );
    // Expired, and not yet valid.
    let expired = signed(&s.e1_key, &e1, "GET", &path, now - 400, now - 200, &all);
    assert_eq!(
        raw_get(&s, &path, &expired)?,
        (401, "signature_expired".into())
    );
    let early = signed(&s.e1_key, &e1, "GET", &path, now + 120, now + 180, &all);
    assert_eq!(
        raw_get(&s, &path, &early)?,
        (401, "signature_not_yet_valid".into())
    );
    // Unknown keys: no such member, an unregistered enterprise, a key id of no form.
    for keyid in ["member:nobody", "enterprise:91310000MA1FL8TQ2W", "admin"] {
        let h = signed(&member, keyid, "GET", &path, now, now + 60, &all);
        assert_eq!(
            raw_get(&s, &path, &h)?,
            (401, "signature_unknown_key".into()),
            "{keyid}"
        );
    }
    // Malformed: half the headers, too long a lifetime, not covering the query.
    let half = vec![good[0].clone()];
    assert_eq!(
        raw_get(&s, &path, &half)?,
        (401, "signature_malformed".into())
    );
    let long = signed(&s.e1_key, &e1, "GET", &path, now, now + 3_600, &all);
    assert_eq!(
        raw_get(&s, &path, &long)?,
        (401, "signature_malformed".into())
    );
    let partial = signed(
        &s.e1_key,
        &e1,
        "GET",
        &path,
        now,
        now + 60,
        &["@method", "@path"],
    );
    assert_eq!(
        raw_get(&s, &path, &partial)?,
        (401, "signature_malformed".into())
    );
    let garbage = vec![
        ("signature-input", "x".to_string()),
        ("signature", "y".to_string()),
    ];
    assert_eq!(
        raw_get(&s, &path, &garbage)?,
        (401, "signature_malformed".into())
    );
    // A body must be covered by its digest, and the digest must be the body's.
    let check = "/v1/records/check";
    let ent = xinlian_client::signer::RecordSigner {
        key: s.e1_key.clone(),
        chain: s.c.genesis.hash(),
    };
    let body = &serde_json::to_vec(&[ent.sign(commission("lot-2"))])?[..];
    let no_digest = signed(&member, "member:other", "POST", check, now, now + 60, &all);
    assert_eq!(
        raw(&s, "POST", check, &no_digest, Some(body))?,
        (401, "signature_malformed".into())
    );
    let signer = RequestSigner {
        keyid: "member:other".into(),
        key: member.clone(),
    };
    let mut lying = signer.headers("POST", check, Some(b"[]"));
    assert_eq!(
        raw(&s, "POST", check, &lying, Some(body))?,
        (401, "signature_invalid".into())
    );
    lying = signer.headers("POST", check, Some(body));
    assert_eq!(
        raw(&s, "POST", check, &lying, Some(body))?.0,
        200,
        "signed with its digest"
    );
    // A signed target longer than the access log records whole.
    let padded = format!("{path}?{}", "x=1&".repeat(300));
    let h = signed(&s.e1_key, &e1, "GET", &padded, now, now + 60, &all);
    assert_eq!(raw_get(&s, &padded, &h)?, (414, "target_too_long".into()));
    // A signed event stream ends when its signature expires.
    let events = format!("/v1/events?enterprise={}", s.e1.as_str());
    let h = signed(&s.e1_key, &e1, "GET", &events, now_s(), now_s() + 2, &all);
    let started = std::time::Instant::now();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(20)))
        .build()
        .into();
    let mut req = agent.get(&format!("{}{events}", s.node.client.base_url()));
    for (n, v) in &h {
        req = req.header(*n, v);
    }
    let body = req.call()?.body_mut().read_to_string()?;
    assert!(body.contains("event: block"), "it streamed before it ended");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The member the record is disclosed to reads it; the public does not.
    let fresh = signed(&member, "member:other", "GET", &path, now, now + 60, &all);
    assert_eq!(raw_get(&s, &path, &fresh)?, (200, String::new()));
    assert_eq!(raw_get(&s, &path, &[])?, (404, "not_visible".into()));
    Ok(())
}

/// Every answer to a signed reader is in the access log, none to the public; the log
/// exports with its chain checked, and a changed line is named.
#[test]
fn non_public_reads_are_in_the_access_log_and_the_log_is_tamper_evident() -> Result<()> {
    let s = scenario()?;
    let id = s.records["named"];
    let named = s.client(&Reader::Member("named".into()))?;
    let e1 = s.client(&Reader::Enterprise(s.e1.clone()))?;
    named.record(&id, 0)?;
    e1.enterprise(s.e1.as_str())?;
    // A refused read is logged too.
    let other = s.client(&Reader::Member("other".into()))?;
    assert_eq!(refused(other.record(&id, 0)), (403, "not_visible".into()));
    let _ = s.node.client.unsigned().record(&s.records["public"], 0)?;
    let export = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_xinlian-node-under-test"))
            .args(["access-log", "--data"])
            .arg(s.c.data_dir())
            .output()
    };
    let out = export()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()?;
    let seen = |reader: &str, target: &str| {
        lines.iter().any(|l| {
            l["reader"] == reader && l["target"].as_str().is_some_and(|t| t.starts_with(target))
        })
    };
    assert!(
        seen("member:named", &format!("/v1/records/{id}")),
        "{lines:?}"
    );
    assert!(seen(
        &format!("enterprise:{}", s.e1.as_str()),
        &format!("/v1/enterprises/{}", s.e1.as_str())
    ));
    assert!(
        lines.iter().all(|l| l["reader"] != "public"),
        "public reads are not logged"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["reader"] == "member:other" && l["status"] == 403),
        "a refusal is logged: {lines:?}"
    );
    // Rewrite who read: the export stops at that line.
    let path = s.c.data_dir().join("access.log");
    let text = std::fs::read_to_string(&path)?;
    std::fs::write(&path, text.replacen("member:named", "member:other", 1))?;
    let out = export()?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hash"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A pending record is never public: an observer whose only validator has stopped
/// keeps it pending; the subject and the members read it there, the public gets what
/// it would for no record at all, however public the record's level.
#[test]
fn pending_records_are_never_public() -> Result<()> {
    let c = consortium()?;
    let validator = c.start()?;
    let (e1, e1_key) = (
        Uscc::with_check("91310117MA1G0A1B2").unwrap(),
        keys::generate()?,
    );
    let (ent, _) = register_enterprise(&c, &validator.client, e1.clone(), e1_key.clone())?;
    let height = validator.client.status()?.height;
    let observer = c.start_member("other", &[&validator])?;
    xinlian_tests::wait_until(
        std::time::Duration::from_secs(20),
        "the observer synced",
        || observer.client.status().is_ok_and(|st| st.height >= height),
    )?;
    validator.stop()?;
    let today = today_of(&observer.client)?;
    let rec = ent.sign(commitment(&e1, Disclosure::Public, today, "pending"));
    let id = observer.client.submit(&rec)?.id;
    let base = observer.client.base_url();
    let as_ = |keyid: &str, key: SigningKey| {
        NodeClient::new(base).signed_by(RequestSigner {
            keyid: keyid.into(),
            key,
        })
    };
    let public = NodeClient::new(base);
    assert_eq!(refused(public.record(&id, 0)), (404, "not_visible".into()));
    let subject = as_(&format!("enterprise:{}", e1.as_str()), e1_key);
    assert_eq!(
        subject.record(&id, 0)?.status,
        xinlian_client::api::RecordStatus::Pending
    );
    let member = as_("member:other", c.agency("other")?.key);
    assert_eq!(
        member.record(&id, 0)?.status,
        xinlian_client::api::RecordStatus::Pending
    );
    Ok(())
}

/// Whether any file under `dir` contains `needle`.
fn on_disk(dir: &std::path::Path, needle: &[u8]) -> Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if on_disk(&path, needle)? {
                return Ok(true);
            }
        } else if std::fs::read(&path)?
            .windows(needle.len())
            .any(|w| w == needle)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

fn private_file(c: &Consortium, member: &str, id: &RecordId) -> std::path::PathBuf {
    c.data_dir_of(member)
        .join("private")
        .join(format!("{}.json", id.to_hex()))
}

/// Sealed text stays off the ledger; its private data reaches exactly the nodes of the
/// members entitled to the record (never another member's node, checked in its store);
/// entitled readers get it and check it against the record they verified; an erasure
/// decision purges it from every entitled node's disk, after which reads answer that it
/// was erased, and the record's proof still verifies.
#[test]
fn private_data_reaches_exactly_the_entitled_nodes_and_is_purged_on_erasure() -> Result<()> {
    let c = consortium()?;
    let v0 = c.start_member("v0", &[])?;
    let named_node = c.start_member("named", &[&v0]).inspect_err(|_| {
        eprintln!(
            "{}",
            std::fs::read_to_string(c.path().join("named.log")).unwrap_or_default()
        )
    })?;
    let other_node = c.start_member("other", &[&v0])?;
    let (e1, e1_key) = (
        Uscc::with_check("91310117MA1G0A1B2").unwrap(),
        keys::generate()?,
    );
    let (ent, _) = register_enterprise(&c, &v0.client, e1.clone(), e1_key.clone())?;
    let today = today_of(&v0.client)?;
    let secret = format!("NAMED-SECRET-{}", std::process::id());
    let shared_secret = format!("CONSORTIUM-SECRET-{}", std::process::id());
    let seal = |d: Disclosure,
                text: &str|
     -> Result<(SignedRecord, xinlian_client::private::PrivateData)> {
        let mut body = Body::Commitment(Commitment {
            content: Content::Text(text.into()),
            ..commitment(&e1, d, today, "sealed")
        });
        let fields = xinlian_client::private::seal(&mut body)?;
        let rec = ent.sign(body);
        Ok((
            rec.clone(),
            xinlian_client::private::PrivateData {
                record: rec.id(),
                fields,
            },
        ))
    };
    // In clear, the ledger refuses it.
    let clear = ent.sign(Commitment {
        content: Content::Text("in clear".into()),
        ..commitment(&e1, Disclosure::Consortium, today, "clear")
    });
    assert_eq!(refused(v0.client.submit(&clear)), (422, "in_clear".into()));

    let (named_rec, named_data) = seal(Disclosure::Agencies(vec!["named".into()]), &secret)?;
    let (all_rec, all_data) = seal(Disclosure::Consortium, &shared_secret)?;
    let id = final_id(&v0.client, &named_rec)?;
    let all_id = final_id(&v0.client, &all_rec)?;
    for s in [&secret, &shared_secret] {
        assert!(
            !on_disk(&c.data_dir_of("v0"), s.as_bytes())?,
            "the ledger holds only the commitment"
        );
    }

    // The submitter sends it, signing with its record's key; unsigned, the record
    // answers as a missing one would.
    let uploader = |n: &Node| {
        n.client.unsigned().signed_by(RequestSigner {
            keyid: format!("key:{}", keys::public_key(&e1_key).to_hex()),
            key: e1_key.clone(),
        })
    };
    assert_eq!(
        refused(v0.client.put_private(&named_data)),
        (404, "not_visible".into())
    );
    // A false text, or data for a node whose member may not hold it, is refused.
    let mut forged = named_data.clone();
    forged.fields[0].text.push('!');
    assert_eq!(
        refused(uploader(&v0).put_private(&forged)),
        (422, "private_mismatch".into())
    );
    let size = v0.client.status()?.ledger_size;
    for n in [&named_node, &other_node] {
        xinlian_tests::wait_until(
            std::time::Duration::from_secs(20),
            "the observers have the records",
            || n.client.status().is_ok_and(|s| s.ledger_size >= size),
        )?;
    }
    assert_eq!(
        refused(uploader(&other_node).put_private(&named_data)),
        (403, "not_entitled".into())
    );

    // Kept by the accepting agency's node, sent on to the named member's only.
    let stored = uploader(&v0).put_private(&named_data)?;
    assert_eq!(stored.sending_to, vec!["named".to_string()]);
    let everyone = uploader(&v0).put_private(&all_data)?;
    // Every other member that runs a node (the registrar runs none).
    assert_eq!(
        everyone.sending_to,
        vec!["named".to_string(), "other".to_string()]
    );
    let wait = |what: &str, p: std::path::PathBuf| {
        xinlian_tests::wait_until(std::time::Duration::from_secs(30), what, || p.exists())
    };
    wait(
        "the named member's node has it",
        private_file(&c, "named", &id),
    )?;
    wait(
        "every node has the consortium's",
        private_file(&c, "other", &all_id),
    )?;
    assert!(private_file(&c, "v0", &id).exists());
    assert!(
        !private_file(&c, "other", &id).exists(),
        "a node not entitled never gets it"
    );
    assert!(
        !on_disk(&c.data_dir_of("other"), secret.as_bytes())?,
        "nowhere in its store"
    );
    assert!(on_disk(&c.data_dir_of("other"), shared_secret.as_bytes())?);

    // Entitled readers get it and check it against the record they verified; others not.
    let light = LightClient::new(c.genesis.clone());
    let as_ = |node: &Node, keyid: &str, key: SigningKey| {
        node.client.unsigned().signed_by(RequestSigner {
            keyid: keyid.into(),
            key,
        })
    };
    let subject = as_(
        &named_node,
        &format!("enterprise:{}", e1.as_str()),
        e1_key.clone(),
    );
    let verified = light.verify_record(&subject.record_proof(&id, None)?)?;
    let got = subject.private(&id)?;
    xinlian_client::private::check(&verified.record, &got)?;
    assert_eq!(got.fields[0].text, secret);
    let named = as_(&named_node, "member:named", c.agency("named")?.key);
    assert_eq!(named.private(&id)?, named_data);
    let other = as_(&other_node, "member:other", c.agency("other")?.key);
    assert_eq!(refused(other.private(&id)), (403, "not_visible".into()));
    assert_eq!(
        refused(v0.client.unsigned().private(&id)),
        (404, "not_visible".into())
    );
    assert_eq!(other.private(&all_id)?, all_data);

    // The erasure decision: purged from every entitled node's disk; the proof remains.
    let agency = c.agency("v0")?;
    final_id(
        &v0.client,
        &agency.sign(Erase {
            record: id,
            document: "沪市监删〔2026〕1号".into(),
            reason: "the enterprise's request under PIPL Art. 47".into(),
            date: today,
        }),
    )?;
    for m in ["v0", "named"] {
        let p = private_file(&c, m, &id);
        xinlian_tests::wait_until(std::time::Duration::from_secs(20), "purged", || !p.exists())?;
        assert!(
            !on_disk(&c.data_dir_of(m), secret.as_bytes())?,
            "{m}: gone from its disk"
        );
    }
    assert_eq!(refused(named.private(&id)), (410, "erased".into()));
    assert_eq!(
        refused(uploader(&v0).put_private(&named_data)),
        (410, "erased".into())
    );
    light.verify_record(&subject.record_proof(&id, None)?)?;
    // The other record's private data is untouched.
    assert_eq!(other.private(&all_id)?, all_data);
    Ok(())
}

/// The operator of an individual business is a natural person: their name and identity
/// number are refused in clear, travel sealed as private data to every member's node
/// and the enterprise, never to the public, and the registrar that registered the
/// enterprise — no other agency — can order them erased, after which they are gone
/// from every node's disk while the registration's proof still verifies.
#[test]
fn a_registrations_operator_is_sealed_served_to_the_entitled_and_erasable() -> Result<()> {
    let c = consortium()?;
    let v0 = c.start_member("v0", &[])?;
    let other_node = c.start_member("other", &[&v0])?;
    let registrar = c.agency("registrar")?;
    let uscc = Uscc::with_check("92310115MA1K4B7C2").unwrap();
    let key = keys::generate()?;
    let operator = format!("OPERATOR 王小明 310101199003070000 {}", std::process::id());
    let registration = |operator: Content| RegisterEntity {
        possession: xinlian_client::crypto::prove_possession(
            &key,
            &registrar.chain,
            xinlian_client::crypto::KeyHolder::Enterprise(uscc.as_str()),
        ),
        uscc: uscc.clone(),
        name: "个体 noodle shop".into(),
        operator: Some(operator),
        key: keys::public_key(&key),
        check_override: None,
    };
    let in_clear = registrar.sign(registration(Content::Text(operator.clone())));
    assert_eq!(
        refused(v0.client.submit(&in_clear)),
        (422, "in_clear".into())
    );
    let mut body = Body::RegisterEntity(registration(Content::Text(operator.clone())));
    let fields = xinlian_client::private::seal(&mut body)?;
    assert_eq!(fields[0].field, "operator");
    let rec = registrar.sign(body);
    let id = final_id(&v0.client, &rec)?;
    let data = xinlian_client::private::PrivateData { record: id, fields };
    assert!(
        !on_disk(&c.data_dir_of("v0"), operator.as_bytes())?,
        "the ledger holds only the commitment"
    );
    let size = v0.client.status()?.ledger_size;
    xinlian_tests::wait_until(
        std::time::Duration::from_secs(20),
        "the observer has the records",
        || {
            other_node
                .client
                .status()
                .is_ok_and(|s| s.ledger_size >= size)
        },
    )?;

    // Sent by the registrar (signing with its record's key) to every other member that
    // runs a node (the registrar runs none; `named`'s is down, and gets it when up).
    let uploader = v0
        .client
        .unsigned()
        .signed_by(RequestSigner::for_key(registrar.key.clone()));
    assert_eq!(
        uploader.put_private(&data)?.sending_to,
        vec!["named".to_string(), "other".to_string()]
    );
    let far = private_file(&c, "other", &id);
    xinlian_tests::wait_until(std::time::Duration::from_secs(30), "sent on", || {
        far.exists()
    })?;

    // The enterprise and members read it and check it against the verified record;
    // the public reads the registration but not its operator.
    let light = LightClient::new(c.genesis.clone());
    let enterprise = other_node.client.unsigned().signed_by(RequestSigner {
        keyid: format!("enterprise:{}", uscc.as_str()),
        key: key.clone(),
    });
    let verified = light.verify_record(&enterprise.record_proof(&id, None)?)?;
    let got = enterprise.private(&id)?;
    xinlian_client::private::check(&verified.record, &got)?;
    assert_eq!(got.fields[0].text, operator);
    let member = other_node.client.unsigned().signed_by(RequestSigner {
        keyid: "member:other".into(),
        key: c.agency("other")?.key,
    });
    assert_eq!(member.private(&id)?, data);
    let public = v0.client.unsigned();
    light.verify_record(&public.record_proof(&id, None)?)?;
    assert_eq!(refused(public.private(&id)), (403, "not_entitled".into()));

    // Only the registrar that registered the enterprise decides its erasure.
    let today = today_of(&v0.client)?;
    let erase = |by: &xinlian_client::signer::RecordSigner| {
        by.sign(Erase {
            record: id,
            document: "沪市监删〔2026〕2号".into(),
            reason: "the operator's request under PIPL Art. 47".into(),
            date: today,
        })
    };
    let (status, code) = refused(v0.client.submit(&erase(&c.agency("v0")?)));
    assert_eq!((status, code.as_str()), (403, "unauthorised"));
    final_id(&v0.client, &erase(&registrar))?;
    for m in ["v0", "other"] {
        let p = private_file(&c, m, &id);
        xinlian_tests::wait_until(std::time::Duration::from_secs(20), "purged", || !p.exists())?;
        assert!(
            !on_disk(&c.data_dir_of(m), operator.as_bytes())?,
            "{m}: gone from its disk"
        );
    }
    assert_eq!(refused(member.private(&id)), (410, "erased".into()));
    light.verify_record(&enterprise.record_proof(&id, None)?)?;
    Ok(())
}

/// Trace events of a domain whose policy hides quantities (docs/privacy.md § Trace
/// events). A clear amount there is refused. Every route that carries the events — the
/// record, its proof, the event stream, the batch page, provenance, the EPCIS export —
/// opens the amounts only to members and the event's parties (its signer; a
/// shipment's addressee); everyone else reads commitments, which verify all the same.
#[test]
fn hidden_amounts_are_opened_only_to_members_and_the_parties() -> Result<()> {
    use xinlian_client::hidden::Amount;
    use xinlian_client::provenance::Direction;
    let c = Consortium::with_members(
        env!("CARGO_BIN_EXE_xinlian-node-under-test"),
        &specs(),
        Policy {
            block_interval_ms: 50,
            trace: xinlian_genesis::TracePolicy::hiding_quantities("food"),
            ..Policy::default()
        },
    )?;
    let node = c.start_member("v0", &[])?;
    let enterprise =
        |payload: &str| -> Result<(Uscc, SigningKey, xinlian_client::signer::RecordSigner)> {
            let (u, k) = (Uscc::with_check(payload).unwrap(), keys::generate()?);
            let (signer, _) = register_enterprise(&c, &node.client, u.clone(), k.clone())?;
            Ok((u, k, signer))
        };
    let (farm_u, farm_key, farm) = enterprise("91310117MA1G0A1B2")?;
    let (shop_u, shop_key, _) = enterprise("91310115MA1H0C3D4")?;
    let (other_u, other_key, _) = enterprise("91310000MA1FL8TQ3")?;

    let clear = farm.sign(commission("rice-1"));
    assert_eq!(
        refused(node.client.submit(&clear)),
        (422, "amount_form".into())
    );
    let mut body = Body::Commission(commission("rice-1"));
    xinlian_client::hidden::open_per_policy(&mut body, &c.genesis.policy.trace, |_| None);
    let made = farm.sign(body);
    final_id(&node.client, &made)?;
    let shipped = farm.sign(Ship {
        batch: "rice-1".into(),
        quantity: Quantity {
            amount: Amount::hide(40),
            uom: "KGM".into(),
        },
        to: shop_u.clone().into(),
        from_location: "farm".into(),
        to_location: "shop".into(),
        time: commission("x").time,
    });
    let ship_id = final_id(&node.client, &shipped)?;

    let as_ = |keyid: String, key: SigningKey| {
        node.client
            .unsigned()
            .signed_by(RequestSigner { keyid, key })
    };
    let light = LightClient::new(c.genesis.clone());
    // (reader, client, opens the commission, opens the shipment)
    let readers = [
        ("public", node.client.unsigned(), false, false),
        (
            "member",
            as_("member:other".into(), c.agency("other")?.key),
            true,
            true,
        ),
        (
            "the maker",
            as_(format!("enterprise:{}", farm_u.as_str()), farm_key),
            true,
            true,
        ),
        (
            "the addressee",
            as_(format!("enterprise:{}", shop_u.as_str()), shop_key),
            false,
            true,
        ),
        (
            "another enterprise",
            as_(format!("enterprise:{}", other_u.as_str()), other_key),
            false,
            false,
        ),
    ];
    for (who, client, opens_made, opens_ship) in &readers {
        let form = |r: &SignedRecord, opens: bool| match opens {
            true => r.clone(),
            false => r.ledger_form().into_owned(),
        };
        let (made_seen, ship_seen) = (form(&made, *opens_made), form(&shipped, *opens_ship));
        assert_eq!(
            client.record(&ship_id, 0)?.record,
            ship_seen,
            "{who}: record"
        );
        let verified = light.verify_record(&client.record_proof(&ship_id, None)?)?;
        assert_eq!(verified.record, ship_seen, "{who}: its proof verifies");

        let mut stream = client.events(
            &EventFilter {
                batch: Some("rice-1".into()),
                ..EventFilter::default()
            },
            0,
        )?;
        let mut streamed = Vec::new();
        while streamed.len() < 2 {
            for r in stream.next_event()?.records {
                streamed.push(SignedRecord::decode(&r.entry.record.0, usize::MAX)?);
            }
        }
        assert_eq!(
            streamed,
            vec![made_seen, ship_seen],
            "{who}: the event stream"
        );

        let page = client.batch("rice-1")?;
        let held = (page.holders.iter())
            .find(|h| h.holder == farm_u.clone().into())
            .unwrap();
        let sees_farm = matches!(*who, "member" | "the maker");
        assert_eq!(
            held.amount,
            sees_farm.then_some(60),
            "{who}: the maker's holding"
        );
        assert_eq!(
            page.in_transit[0].amount,
            opens_ship.then_some(40),
            "{who}: transit"
        );

        let mut light = light.clone();
        let (p, _) = xinlian_client::http::fetch_provenance(
            client,
            &mut light,
            "rice-1",
            Direction::Upstream,
            None,
        )?;
        let b = &p.batches["rice-1"];
        let all = *opens_made && *opens_ship;
        assert_eq!(b.amounts_withheld, !all, "{who}: provenance");
        assert_eq!(
            b.transfers[0].to,
            shop_u.clone().into(),
            "{who}: the chain of custody"
        );
        assert_eq!(b.transfers[0].amount, all.then_some(40), "{who}");
        // Each event exported as the reader reads it.
        let doc = client.batch_epcis("rice-1")?.to_string();
        assert_eq!(
            doc.contains("\"quantity\":40"),
            *opens_ship,
            "{who}: EPCIS {doc}"
        );
        assert_eq!(
            doc.contains("\"quantity\":100"),
            *opens_made,
            "{who}: EPCIS"
        );
    }
    // The public's copy, submitted back, tells nothing: it is the same record.
    let sealed = shipped.ledger_form().into_owned();
    let (status, code) = refused(node.client.submit_and_wait(&sealed, 1_000));
    assert_eq!(
        (status, code.as_str()),
        (409, "duplicate"),
        "{status} {code}"
    );
    Ok(())
}

/// A domain whose policy hides counterparties (docs/privacy.md § Trace events): its
/// enterprises act under custody keys a registrar binds, the enterprise sealed. No
/// answer to the public — records, proofs, the event stream, the batch page,
/// provenance, the EPCIS export — names the enterprises, yet the public verifies the
/// chain of custody between the pseudonyms; a member learns who a custody key is from
/// the binding's private data, and the holder of a custody key reads its own amounts
/// by signing with it.
#[test]
fn hidden_counterparties_are_custody_keys_to_everyone_but_the_members() -> Result<()> {
    use xinlian_client::crypto::{KeyHolder, prove_possession};
    use xinlian_client::hidden::Amount;
    use xinlian_client::party::Party;
    use xinlian_client::provenance::Direction;
    use xinlian_genesis::TraceField;
    let c = Consortium::with_members(
        env!("CARGO_BIN_EXE_xinlian-node-under-test"),
        &specs(),
        Policy {
            block_interval_ms: 50,
            trace: xinlian_genesis::TracePolicy::hiding(
                "drug",
                &[TraceField::Quantity, TraceField::Counterparty],
            ),
            ..Policy::default()
        },
    )?;
    let node = c.start_member("v0", &[])?;
    let registrar = c.agency("registrar")?;
    let mut custody = Vec::new();
    for payload in ["91310117MA1G0A1B2", "91310000MA1FL8TQ3"] {
        let (u, main) = (Uscc::with_check(payload).unwrap(), keys::generate()?);
        register_enterprise(&c, &node.client, u.clone(), main.clone())?;
        let k = keys::generate()?;
        let mut body = Body::BindCustodyKey(BindCustodyKey {
            domain: "drug".into(),
            key: keys::public_key(&k),
            enterprise: Content::Text(u.as_str().into()),
            possession: prove_possession(&k, &registrar.chain, KeyHolder::Custody("drug")),
        });
        let fields = xinlian_client::private::seal(&mut body)?;
        let binding = registrar.sign(body);
        let id = final_id(&node.client, &binding)?;
        node.client
            .unsigned()
            .signed_by(RequestSigner::for_key(registrar.key.clone()))
            .put_private(&xinlian_client::private::PrivateData { record: id, fields })?;
        custody.push((u, main, k, id));
    }
    let [
        (maker_u, maker_main, maker_k, maker_binding),
        (hospital_u, _, hospital_k, _),
    ] = &custody[..]
    else {
        unreachable!()
    };
    let signer = |k: &SigningKey| xinlian_client::signer::RecordSigner {
        key: k.clone(),
        chain: registrar.chain,
    };
    let (maker, hospital) = (signer(maker_k), signer(hospital_k));
    let (mp, hp) = (
        Party::Custody(keys::public_key(maker_k)),
        Party::Custody(keys::public_key(hospital_k)),
    );
    let mut lot = commission("lot-1");
    lot.domain = "drug".into();
    lot.quantity.amount = Amount::hide(100);
    let own_key = signer(maker_main).sign(lot.clone());
    assert_eq!(
        refused(node.client.submit(&own_key)),
        (422, "party_form".into())
    );
    let made = maker.sign(lot);
    final_id(&node.client, &made)?;
    let shipped = maker.sign(Ship {
        batch: "lot-1".into(),
        quantity: Quantity {
            amount: Amount::hide(40),
            uom: "KGM".into(),
        },
        to: hp.clone(),
        from_location: "plant".into(),
        to_location: "pharmacy".into(),
        time: commission("x").time,
    });
    let ship_id = final_id(&node.client, &shipped)?;
    final_id(
        &node.client,
        &hospital.sign(Receive {
            shipment: ship_id,
            location: "pharmacy".into(),
            time: commission("x").time,
        }),
    )?;

    let light = LightClient::new(c.genesis.clone());
    let names = |s: &str| s.contains(maker_u.as_str()) || s.contains(hospital_u.as_str());
    let public = node.client.unsigned();
    let member = node.client.unsigned().signed_by(RequestSigner {
        keyid: "member:other".into(),
        key: c.agency("other")?.key,
    });
    let maker_reads = (node.client.unsigned()).signed_by(RequestSigner::for_key(maker_k.clone()));
    // (reader, client, whether it reads the maker's holding)
    for (who, client, opens) in [
        ("public", &public, false),
        ("member", &member, true),
        ("the maker's custody key", &maker_reads, true),
    ] {
        let page = client.batch("lot-1")?;
        assert_eq!(
            page.batch.created_by, mp,
            "{who}: the maker is its custody key"
        );
        let held = page.holders.iter().find(|h| h.holder == mp).unwrap();
        assert_eq!(
            held.amount,
            opens.then_some(60),
            "{who}: the maker's holding"
        );
        assert!(page.holders.iter().any(|h| h.holder == hp), "{who}");
        let mut light = light.clone();
        let (p, _) = xinlian_client::http::fetch_provenance(
            client,
            &mut light,
            "lot-1",
            Direction::Upstream,
            None,
        )?;
        let b = &p.batches["lot-1"];
        assert_eq!(
            (&b.transfers[0].from, &b.transfers[0].to),
            (&mp, &hp),
            "{who}"
        );
        assert!(b.transfers[0].receipt.is_some(), "{who}: acknowledged");
        assert!(
            matches!(&b.events[1].signer,
                xinlian_client::proof::SignerAuthority::Custody { domain, bound_by, .. }
                    if domain == "drug" && bound_by == maker_binding),
            "{who}: {:?}",
            b.events[1].signer
        );
        if who == "public" {
            for (route, answer) in [
                ("batch", serde_json::to_string(&page)?),
                ("provenance", serde_json::to_string(&p)?),
                ("EPCIS", client.batch_epcis("lot-1")?.to_string()),
                (
                    "record",
                    serde_json::to_string(&client.record(&ship_id, 0)?)?,
                ),
                // The proof's records (the event and the binding it cites) decoded:
                // in the answer they are hex.
                ("proof", {
                    let proof = client.record_proof(&ship_id, None)?;
                    let records = (std::iter::once(&proof.entry).chain(&proof.key_bindings))
                        .map(|e| SignedRecord::decode(&e.record.0, usize::MAX))
                        .collect::<Result<Vec<_>, _>>()?;
                    ensure!(records.len() == 2, "the shipment and its signer's binding");
                    serde_json::to_string(&records)?
                }),
            ] {
                assert!(
                    !names(&answer),
                    "the public's {route} names an enterprise: {answer}"
                );
            }
            assert!(
                client.enterprise(maker_u.as_str())?.records.len() == 1,
                "the maker's page lists its registration and nothing of the domain"
            );
            assert_eq!(
                refused(client.private(maker_binding)),
                (403, "not_entitled".into())
            );
        }
    }
    // Each custody key reads its own holding, not the other party's, and is no member:
    // the binding's private data is not its to read.
    let page = maker_reads.batch("lot-1")?;
    let held = |p: &Party| page.holders.iter().find(|h| h.holder == *p).unwrap().amount;
    assert_eq!((held(&mp), held(&hp)), (Some(60), None));
    let hospital_reads = node
        .client
        .unsigned()
        .signed_by(RequestSigner::for_key(hospital_k.clone()));
    let page = hospital_reads.batch("lot-1")?;
    let held = |p: &Party| page.holders.iter().find(|h| h.holder == *p).unwrap().amount;
    assert_eq!((held(&mp), held(&hp)), (None, Some(40)));
    assert_eq!(
        refused(maker_reads.private(maker_binding)),
        (403, "not_entitled".into())
    );
    // The binding as the public reads it: verified, its enterprise sealed.
    let binding = light.verify_record(&public.record_proof(maker_binding, None)?)?;
    assert!(matches!(
        &binding.record.envelope.body,
        Body::BindCustodyKey(b) if matches!(b.enterprise, Content::Sealed(_))
    ));
    // A member learns who the custody key is, and checks it against the binding.
    let got = member.private(maker_binding)?;
    xinlian_client::private::check(&binding.record, &got)?;
    assert_eq!(got.fields[0].text, maker_u.as_str());
    // Revoked, the key neither signs nor reads.
    final_id(
        &node.client,
        &registrar.sign(RevokeCustodyKey {
            key: keys::public_key(maker_k),
            reason: "lost".into(),
        }),
    )?;
    assert_eq!(
        refused(node.client.submit(&maker.sign(Sell {
            batch: "lot-1".into(),
            quantity: Quantity {
                amount: Amount::hide(1),
                uom: "KGM".into(),
            },
            kind: SaleKind::Dispensed,
            location: "plant".into(),
            time: commission("x").time,
        }))),
        (403, "key_revoked".into())
    );
    assert_eq!(
        refused(maker_reads.batch("lot-1")),
        (401, "signature_unknown_key".into())
    );
    Ok(())
}
