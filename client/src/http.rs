//! A blocking client for the node's HTTP API (behind the `http` cargo feature), and the
//! fetch-and-verify loops that drive the light client and provenance verification over it.

use std::time::Duration;

use crate::api::paths::{self, fill};
use crate::api::{
    ApiError, BatchView, BlockView, CheckedRecords, EnterpriseView, RecordView, RosterChanges,
    Status, Submitted, SubmittedRecords,
};
use crate::events::{
    BlockEvent, EVENT_BYTES_MAX, EventError, EventFilter, EventVerifier, SseParser, VerifiedEvent,
    decode_event,
};
use crate::proof::{
    Checkpoint, ConsistencyProof, LightClient, RecordProof, VerifiedRecord, VerifyError,
};
use crate::provenance::{
    BUNDLE_PAGES_MAX, Direction, PROVENANCE_ROOTS_MAX, Provenance, ProvenanceError, ProvenanceProof,
};
use crate::record::{EncodedRecord, RecordId, SignedRecord};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The node answered and refused: the request or record is invalid.
    #[error("{code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// No usable answer: the node is down, unreachable, or spoke nonsense.
    #[error("node unreachable at {url}: {reason}")]
    Unreachable { url: String, reason: String },
}

#[derive(Clone)]
pub struct NodeClient {
    base: String,
    agent: ureq::Agent,
    /// How `https://` nodes are authenticated: Mozilla's roots unless [`NodeClient::trusting`]
    /// named a CA.
    tls: ureq::tls::TlsConfig,
    /// Who signs the requests (RFC 9421), if anyone: without, the node answers as to
    /// the public.
    reader: Option<RequestSigner>,
}

/// A CA file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("the CA certificates {what}: {reason}")]
pub struct CaError {
    pub what: String,
    pub reason: String,
}

/// A key that signs requests, and the key id the node looks it up by: `member:ID`
/// (a member's signing or node key) or `enterprise:USCC` (its bound key).
#[derive(Clone)]
pub struct RequestSigner {
    pub keyid: String,
    pub key: ed25519_dalek::SigningKey,
}

/// How long a request signature is valid: the node accepts at most
/// five minutes; a minute covers a slow request and some clock skew.
const SIGNATURE_LIFETIME_S: i64 = 60;

impl RequestSigner {
    /// Signs as whoever holds `key` on the ledger (`key:HEX`): a member's key or an
    /// enterprise's bound key, without naming which.
    pub fn for_key(key: ed25519_dalek::SigningKey) -> RequestSigner {
        RequestSigner {
            keyid: format!("key:{}", hex::encode(key.verifying_key().to_bytes())),
            key,
        }
    }

    /// Signs as `keyid` (`member:ID`, `enterprise:USCC`), or, for `key`, as whoever
    /// holds `key` on the ledger ([`RequestSigner::for_key`]): what `--as` names.
    pub fn named(keyid: &str, key: ed25519_dalek::SigningKey) -> RequestSigner {
        match keyid {
            "key" => RequestSigner::for_key(key),
            _ => RequestSigner {
                keyid: keyid.to_string(),
                key,
            },
        }
    }

    /// The `Signature-Input` and `Signature` headers for a request; `body` when it has
    /// one (its `Content-Digest` is then the third header): valid for a minute from now,
    /// under a fresh random nonce, covering what the node requires.
    pub fn headers(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&[u8]>,
    ) -> Vec<(&'static str, String)> {
        use rand_core::RngCore as _;
        let mut nonce = [0u8; 16];
        rand_core::OsRng.fill_bytes(&mut nonce);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let components: &[&str] = if body.is_some() {
            &["@method", "@path", "@query", "content-digest"]
        } else {
            &["@method", "@path", "@query"]
        };
        self.headers_with(
            method,
            path_and_query,
            body,
            &crate::reqsig::SignRequest {
                keyid: &self.keyid,
                created: now,
                expires: now + SIGNATURE_LIFETIME_S,
                nonce: &hex::encode(nonce),
                components,
            },
        )
    }

    /// As [`RequestSigner::headers`], with the signature's parameters and components as
    /// given (`what.keyid` is the one signed): none if a component is not in the request.
    pub fn headers_with(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&[u8]>,
        what: &crate::reqsig::SignRequest<'_>,
    ) -> Vec<(&'static str, String)> {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let digest = body.map(crate::reqsig::content_digest);
        let header = |n: &str| match n {
            "content-digest" => digest.clone(),
            _ => None,
        };
        let parts = crate::reqsig::RequestParts {
            method,
            path,
            query,
            authority: None,
            scheme: "http",
            header: &header,
        };
        let Ok(signed) = crate::reqsig::sign(&self.key, what, &parts) else {
            return Vec::new();
        };
        let (input, signature) = signed.headers();
        let mut out = vec![("signature-input", input), ("signature", signature)];
        out.extend(digest.map(|d| ("content-digest", d)));
        out
    }
}

impl NodeClient {
    pub fn new(base_url: &str) -> Self {
        let tls = ureq::tls::TlsConfig::builder().build();
        NodeClient {
            base: base_url.trim_end_matches('/').to_string(),
            agent: Self::agent(&tls),
            tls,
            reader: None,
        }
    }

    fn agent(tls: &ureq::tls::TlsConfig) -> ureq::Agent {
        ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(40)))
            .http_status_as_error(false)
            .tls_config(tls.clone())
            .build()
            .into()
    }

    /// The same client, authenticating `https://` nodes by the CA certificates in
    /// `pem` alone (a consortium's own CA, the devnet's `tls/ca.pem`) instead of the
    /// public roots.
    pub fn trusting(mut self, pem: &[u8]) -> Result<Self, CaError> {
        let refused = |reason: String| CaError {
            what: "given".into(),
            reason,
        };
        let mut roots = Vec::new();
        for item in ureq::tls::parse_pem(pem) {
            match item.map_err(|e| refused(e.to_string()))? {
                ureq::tls::PemItem::Certificate(c) => roots.push(c),
                _ => return Err(refused("a CA file holds certificates only".into())),
            }
        }
        if roots.is_empty() {
            return Err(refused("no certificate in it".into()));
        }
        self.tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(roots)))
            .build();
        self.agent = Self::agent(&self.tls);
        Ok(self)
    }

    /// [`NodeClient::trusting`] the CA certificates in the file `path`.
    pub fn trusting_file(self, path: &std::path::Path) -> Result<Self, CaError> {
        let pem = std::fs::read(path).map_err(|e| CaError {
            what: path.display().to_string(),
            reason: e.to_string(),
        })?;
        self.trusting(&pem).map_err(|e| CaError {
            what: path.display().to_string(),
            reason: e.reason,
        })
    }

    /// The same node and trust, signing nothing: what the public is answered.
    pub fn unsigned(&self) -> NodeClient {
        NodeClient {
            reader: None,
            ..self.clone()
        }
    }

    /// The same client, signing every request as `signer`.
    pub fn signed_by(mut self, signer: RequestSigner) -> Self {
        self.reader = Some(signer);
        self
    }

    /// The headers that sign a request, when this client signs.
    fn signature(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Vec<(&'static str, String)> {
        self.reader
            .as_ref()
            .map_or_else(Vec::new, |r| r.headers(method, path, body))
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn unreachable(&self, reason: impl ToString) -> ClientError {
        ClientError::Unreachable {
            url: self.base.clone(),
            reason: reason.to_string(),
        }
    }

    fn read<T: serde::de::DeserializeOwned>(
        &self,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, ClientError> {
        let mut resp = resp.map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| self.unreachable(e))?;
        if status >= 400 {
            return Err(match serde_json::from_str::<ApiError>(&text) {
                Ok(e) => ClientError::Refused {
                    status,
                    code: e.code,
                    message: e.message,
                },
                Err(_) => self.unreachable(format!("HTTP {status} without an API error body")),
            });
        }
        serde_json::from_str(&text).map_err(|e| self.unreachable(format!("unexpected answer: {e}")))
    }

    fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let mut req = self.agent.get(&format!("{}{path}", self.base));
        for (name, value) in self.signature("GET", &self.full_path(path), None) {
            req = req.header(name, value);
        }
        self.read(req.call())
    }

    fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<T, ClientError> {
        let mut req = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("content-type", content_type);
        for (name, value) in self.signature("POST", &self.full_path(path), Some(body)) {
            req = req.header(name, value);
        }
        self.read(req.send(body))
    }

    /// The path the node sees: the base URL's own path, if any, then `path`.
    fn full_path(&self, path: &str) -> String {
        let after_scheme = self
            .base
            .split_once("://")
            .map_or(&self.base[..], |(_, r)| r);
        match after_scheme.find('/') {
            Some(i) => format!("{}{path}", &after_scheme[i..]),
            None => path.to_string(),
        }
    }

    /// Sends a final record's private data (its sealed text and salts) to this node,
    /// which checks it against the record, keeps it and passes it to the other
    /// entitled members' nodes.
    pub fn put_private(
        &self,
        data: &crate::private::PrivateData,
    ) -> Result<crate::api::PrivateStored, ClientError> {
        let body = serde_json::to_vec(data).expect("private data serialises");
        self.post(paths::PRIVATE, "application/json", &body)
    }

    /// A record's private data, for a reader entitled to it: check it with
    /// [`crate::private::check`] against the record, verified.
    pub fn private(&self, id: &RecordId) -> Result<crate::private::PrivateData, ClientError> {
        self.get(&fill(paths::RECORD_PRIVATE, &[("id", &id.to_string())]))
    }

    pub fn status(&self) -> Result<Status, ClientError> {
        self.get(paths::STATUS)
    }

    /// Each record's verdict had they been executed in order now; nothing is kept.
    pub fn check_records(&self, records: &[SignedRecord]) -> Result<CheckedRecords, ClientError> {
        let body = serde_json::to_vec(records).expect("records serialise");
        self.post(paths::RECORDS_CHECK, "application/json", &body)
    }

    /// Submits canonical bytes; returns the id as soon as the node has admitted it.
    pub fn submit(&self, rec: &SignedRecord) -> Result<Submitted, ClientError> {
        self.post(
            paths::RECORDS,
            "application/octet-stream",
            &rec.canonical_bytes(),
        )
    }

    /// Submits up to [`crate::bulk::RECORDS_PER_REQUEST_MAX`] records in one request
    /// (the binary body); each gets its verdict, in order. A refused record changes
    /// nothing; the admitted ones are pending.
    pub fn submit_many(&self, records: &[EncodedRecord]) -> Result<SubmittedRecords, ClientError> {
        self.post(
            paths::RECORDS_BULK,
            "application/octet-stream",
            &crate::bulk::encode(records),
        )
    }

    /// Submits and waits up to `wait_ms` for the record to be final.
    pub fn submit_and_wait(
        &self,
        rec: &SignedRecord,
        wait_ms: u64,
    ) -> Result<RecordView, ClientError> {
        let path = format!("{}?wait_ms={wait_ms}", paths::RECORDS);
        self.post(&path, "application/octet-stream", &rec.canonical_bytes())
    }

    pub fn record(
        &self,
        id: &crate::record::RecordId,
        wait_ms: u64,
    ) -> Result<RecordView, ClientError> {
        let path = fill(paths::RECORD, &[("id", &id.to_string())]);
        self.get(&format!("{path}?wait_ms={wait_ms}"))
    }

    pub fn block(&self, height: u64) -> Result<BlockView, ClientError> {
        self.get(&fill(paths::BLOCK, &[("height", &height.to_string())]))
    }

    pub fn enterprise(&self, uscc: &str) -> Result<EnterpriseView, ClientError> {
        self.get(&fill(paths::ENTERPRISE, &[("uscc", uscc)]))
    }

    /// An enterprise's complete credit record, unchecked by the node (also the proof
    /// that a USCC is not registered): check it with [`LightClient::verify_credit`].
    pub fn credit(&self, uscc: &str) -> Result<crate::credit::CreditProof, ClientError> {
        let path = fill(paths::ENTERPRISE_CREDIT, &[("uscc", uscc)]);
        self.get(&format!("{path}?unchecked=true"))
    }

    pub fn grading(&self) -> Result<crate::api::GradingView, ClientError> {
        self.get(paths::GRADING)
    }

    pub fn batch(&self, batch: &str) -> Result<BatchView, ClientError> {
        self.get(&fill(paths::BATCH, &[("batch", batch)]))
    }

    /// The batch's events as an EPCIS 2.0 document (JSON-LD), unchecked.
    pub fn batch_epcis(&self, batch: &str) -> Result<serde_json::Value, ClientError> {
        self.get(&fill(paths::BATCH_EPCIS, &[("batch", batch)]))
    }

    /// One page of a batch's events (up to 1,000) after event number `after`.
    pub fn batch_page(&self, batch: &str, after: Option<u64>) -> Result<BatchView, ClientError> {
        let after = after.map(|a| format!("&after={a}")).unwrap_or_default();
        let path = fill(paths::BATCH, &[("batch", batch)]);
        self.get(&format!("{path}?limit=1000{after}"))
    }

    /// One page of a batch's provenance, proven against the node's newest header.
    pub fn provenance(
        &self,
        batch: &str,
        direction: Direction,
        depth: Option<u32>,
    ) -> Result<ProvenanceProof, ClientError> {
        let dir = serde_json::to_value(direction).expect("serialises");
        let dir = dir.as_str().expect("a name");
        let depth = depth.map(|d| format!("&depth={d}")).unwrap_or_default();
        let path = fill(paths::BATCH_PROVENANCE, &[("batch", batch)]);
        self.get(&format!("{path}?direction={dir}{depth}"))
    }

    /// The next page: the walk continued from batches an earlier page listed missing.
    pub fn provenance_from(
        &self,
        roots: &[String],
        direction: Direction,
        depth: Option<u32>,
    ) -> Result<ProvenanceProof, ClientError> {
        let body = serde_json::json!({ "roots": roots, "direction": direction, "depth": depth });
        self.post(
            paths::PROVENANCE,
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    /// The proof of a final record against the header at `at` (default: the block
    /// that appended it).
    pub fn record_proof(&self, id: &RecordId, at: Option<u64>) -> Result<RecordProof, ClientError> {
        let path = fill(paths::RECORD_PROOF, &[("id", &id.to_string())]);
        match at {
            Some(h) => self.get(&format!("{path}?at={h}")),
            None => self.get(&path),
        }
    }

    pub fn consistency(&self, first: u64, second: u64) -> Result<ConsistencyProof, ClientError> {
        self.get(&format!(
            "{}?first={first}&second={second}",
            paths::CONSISTENCY
        ))
    }

    pub fn roster_changes(&self, after: u64) -> Result<RosterChanges, ClientError> {
        self.get(&format!("{}?after={after}", paths::ROSTERS))
    }

    pub fn proposals(&self, status: Option<&str>) -> Result<crate::api::Proposals, ClientError> {
        match status {
            Some(s) => self.get(&format!("{}?status={s}", paths::PROPOSALS)),
            None => self.get(paths::PROPOSALS),
        }
    }

    pub fn proposal(&self, id: &RecordId) -> Result<crate::api::ProposalView, ClientError> {
        self.get(&fill(paths::PROPOSAL, &[("id", &id.to_string())]))
    }

    pub fn roster(&self) -> Result<crate::api::RosterView, ClientError> {
        self.get(paths::ROSTER)
    }
}

/// Open shipments of a batch, read from a node (every page of the batch's events).
impl crate::epcis::ShipmentLookup for NodeClient {
    fn open_shipments(&self, batch: &str) -> Result<Vec<crate::api::Transit>, String> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = match self.batch_page(batch, after) {
                Ok(p) => p,
                Err(ClientError::Refused { code, .. }) if code == "not_found" => return Ok(out),
                Err(e) => return Err(e.to_string()),
            };
            out.extend(page.in_transit);
            match page.next_after {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
    }

    fn domain_of(&self, batch: &str) -> Option<String> {
        self.batch_page(batch, None).ok().map(|v| v.batch.domain)
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchVerifyError {
    #[error(transparent)]
    Node(#[from] ClientError),
    /// The node answered, and its answer does not verify.
    #[error("verification failed: {0}")]
    Verify(#[from] VerifyError),
    #[error("verification failed: {0}")]
    Provenance(#[from] ProvenanceError),
    #[error("verification failed: {0}")]
    Credit(#[from] crate::credit::CreditError),
}

/// Fetches an enterprise's credit record and verifies it from `light`'s trust: the
/// roster changes first, then the answer's header (advancing the trusted one), then
/// the answer. An unregistered USCC is the error `CreditError::NotRegistered`, proven.
pub fn fetch_credit(
    node: &NodeClient,
    light: &mut LightClient,
    uscc: &crate::ids::Uscc,
) -> Result<(crate::credit::VerifiedCredit, crate::credit::CreditProof), FetchVerifyError> {
    let changes = node.roster_changes(light.rosters_known_from())?;
    light.accept_changes(&changes.changes)?;
    let proof = node.credit(uscc.as_str())?;
    advance_to(node, light, &proof.checkpoint)?;
    let v = light.verify_credit(uscc, &proof)?;
    Ok((v, proof))
}

/// Moves `light`'s trusted header to `cp` (or checks it, if older), fetching the
/// consistency proof between the two ledgers, and first any roster change `cp`
/// announces that `light` has not seen (one made since the changes were fetched).
fn advance_to(
    node: &NodeClient,
    light: &mut LightClient,
    cp: &Checkpoint,
) -> Result<(), FetchVerifyError> {
    // A header newer than the roster changes fetched may announce one made since.
    if light.check_next_roster(&cp.header).is_err() {
        let changes = node.roster_changes(light.rosters_known_from())?;
        light.accept_changes(&changes.changes)?;
    }
    let trusted = light.trusted().map(|t| t.header.clone());
    let new = &cp.header;
    let consistency = match &trusted {
        Some(t) if t.height != new.height && t.ledger_size > 0 && new.ledger_size > 0 => {
            let (a, b) = if t.height < new.height {
                (t.ledger_size, new.ledger_size)
            } else {
                (new.ledger_size, t.ledger_size)
            };
            Some(node.consistency(a, b.max(a))?)
        }
        _ => None,
    };
    light.advance(cp.clone(), consistency.as_ref())?;
    Ok(())
}

/// Fetches a batch's provenance page by page until nothing is missing (or
/// `BUNDLE_PAGES_MAX` pages; with a `depth`, one page), verifying each against `light`
/// as it comes. Every continuation page must be proven against the first page's
/// header or a later one (the node proves against its newest), each extending the
/// ledger already trusted; an older one is refused ([`ProvenanceError::OlderPage`]).
/// Returns the merged verified answer and the pages, for a bundle.
pub fn fetch_provenance(
    node: &NodeClient,
    light: &mut LightClient,
    batch: &str,
    direction: Direction,
    depth: Option<u32>,
) -> Result<(Provenance, Vec<ProvenanceProof>), FetchVerifyError> {
    let changes = node.roster_changes(light.rosters_known_from())?;
    light.accept_changes(&changes.changes)?;
    let first = node.provenance(batch, direction, depth)?;
    advance_to(node, light, &first.checkpoint)?;
    let mut answer = light.verify_provenance(&first)?;
    if first.direction != direction {
        return Err(ProvenanceError::Batch {
            batch: batch.to_string(),
            reason: format!(
                "asked for the walk {direction:?}, the answer walks {:?}",
                first.direction
            ),
        }
        .into());
    }
    if first.roots != [batch] {
        return Err(ProvenanceError::WrongRoots {
            asked: vec![batch.to_string()],
            got: first.roots,
        }
        .into());
    }
    let mut pages = vec![first];
    // With a depth, the answer is the one page asked for: what lies deeper stays missing.
    while !answer.is_complete() && depth.is_none() && pages.len() < BUNDLE_PAGES_MAX {
        let roots: Vec<String> = answer
            .missing
            .iter()
            .take(PROVENANCE_ROOTS_MAX)
            .cloned()
            .collect();
        let page = node.provenance_from(&roots, direction, depth)?;
        advance_to(node, light, &page.checkpoint)?;
        let v = light.verify_provenance(&page)?;
        if page.roots != roots {
            return Err(ProvenanceError::WrongRoots {
                asked: roots,
                got: page.roots,
            }
            .into());
        }
        let before = answer.batches.len();
        // A page proven against an older header than the first is refused.
        answer.merge(v)?;
        pages.push(page);
        // A page that verifies but adds nothing would only repeat: stop, partial.
        if answer.batches.len() == before {
            break;
        }
    }
    Ok((answer, pages))
}

/// Fetches a record's proof and checks it against `light`, moving its trusted header
/// forward (along a consistency proof) when the record is newer than it. Returns the
/// verified record and the proof it was verified with.
pub fn fetch_verified(
    node: &NodeClient,
    light: &mut LightClient,
    id: &RecordId,
) -> Result<(VerifiedRecord, RecordProof), FetchVerifyError> {
    let changes = node.roster_changes(light.rosters_known_from())?;
    light.accept_changes(&changes.changes)?;
    let trusted = light.trusted().map(|t| t.header.clone());
    let proof = match &trusted {
        Some(t) => match node.record_proof(id, Some(t.height)) {
            Ok(p) => p,
            // Final after the trusted header: prove it against its own block, and
            // move the trusted header there.
            Err(ClientError::Refused { code, .. }) if code == "after_checkpoint" => {
                node.record_proof(id, None)?
            }
            Err(e) => return Err(e.into()),
        },
        None => node.record_proof(id, None)?,
    };
    // Advance first: it checks the new header's certificate (and that the ledger only
    // grew), after which verifying the record against it costs no certificate check.
    advance_to(node, light, &proof.checkpoint)?;
    let verified = light.verify_record(&proof)?;
    if verified.id != *id {
        return Err(VerifyError::WrongRecord {
            expected: *id,
            got: verified.id,
        }
        .into());
    }
    Ok((verified, proof))
}

/// Longest an event stream may stay silent before the reader takes it for lost: the
/// node sends a keep-alive comment every 15 s.
pub const STREAM_SILENCE_MAX: Duration = Duration::from_secs(45);

/// An open `GET /v1/events` connection, read one SSE frame at a time. Its events
/// are not yet verified: [`follow`] runs each through an [`EventVerifier`].
pub struct EventStream {
    reader: std::io::BufReader<ureq::BodyReader<'static>>,
    parser: SseParser,
    url: String,
}

/// Why a stream gave no event: the connection failed (ask again from the cursor,
/// here or at another node), or the node refused the request, or what it sent does
/// not verify (a lying node or a tampered connection: refuse it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    #[error(transparent)]
    Node(#[from] ClientError),
    #[error("event stream refused: {0}")]
    Event(#[from] EventError),
}

impl NodeClient {
    /// Opens the event stream for `filter` from ledger index `from`.
    pub fn events(&self, filter: &EventFilter, from: u64) -> Result<EventStream, ClientError> {
        let url = format!("{}{}?{}", self.base, paths::EVENTS, filter.query(from));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(40)))
            .timeout_per_read(Some(STREAM_SILENCE_MAX))
            .http_status_as_error(false)
            .tls_config(self.tls.clone())
            .build()
            .into();
        let mut req = agent.get(&url).header("accept", "text/event-stream");
        let path = format!("{}?{}", paths::EVENTS, filter.query(from));
        for (name, value) in self.signature("GET", &self.full_path(&path), None) {
            req = req.header(name, value);
        }
        let resp = req.call().map_err(|e| self.unreachable(e))?;
        if resp.status().as_u16() >= 400 {
            return Err(self
                .read::<serde_json::Value>(Ok(resp))
                .err()
                .unwrap_or_else(|| self.unreachable("an error status with a success body")));
        }
        Ok(EventStream {
            reader: std::io::BufReader::new(resp.into_body().into_reader()),
            parser: SseParser::default(),
            url,
        })
    }
}

impl EventStream {
    fn lost(&self, reason: impl ToString) -> StreamError {
        StreamError::Node(ClientError::Unreachable {
            url: self.url.clone(),
            reason: reason.to_string(),
        })
    }

    /// The next block event as sent (not verified). The node's `error` event, a
    /// closed or silent connection are [`StreamError::Node`].
    pub fn next_event(&mut self) -> Result<BlockEvent, StreamError> {
        use std::io::{BufRead, Read};
        loop {
            let mut line = Vec::new();
            let limit = EVENT_BYTES_MAX as u64 + 2;
            let n = (&mut self.reader)
                .take(limit)
                .read_until(b'\n', &mut line)
                .map_err(|e| self.lost(e))?;
            if n == 0 {
                return Err(self.lost("the node closed the stream"));
            }
            if !line.ends_with(b"\n") {
                // Cut short by the end of the connection, or longer than any event.
                if (n as u64) < limit {
                    return Err(self.lost("the stream ended in the middle of a line"));
                }
                return Err(EventError::Malformed(format!(
                    "a line longer than {EVENT_BYTES_MAX} bytes"
                ))
                .into());
            }
            line.pop();
            if line.ends_with(b"\r") {
                line.pop();
            }
            let line = std::str::from_utf8(&line)
                .map_err(|_| EventError::Malformed("a line that is not UTF-8".into()))?;
            let Some(sse) = self.parser.line(line)? else {
                continue;
            };
            if sse.event.as_deref() == Some("error") {
                return Err(self.lost(format!("the node ended the stream: {}", sse.data)));
            }
            if let Some(ev) = decode_event(&sse)? {
                return Ok(ev);
            }
        }
    }
}

/// Why [`follow`] stopped, short of being told to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FollowError {
    /// The node refused the request itself (a bad filter): asking again cannot help.
    #[error(transparent)]
    Refused(ClientError),
    /// What arrived does not verify: a lying node or a tampered connection.
    #[error("event stream refused: {0}")]
    Verify(#[from] EventError),
    /// [`follow`]'s `on_break` gave up after a break.
    #[error("gave up after: {0}")]
    GaveUp(ClientError),
}

/// Follows the event stream from `verifier`'s cursor, handing `on_event` each event
/// only once it verified (so each record exactly once, in ledger order), until
/// `on_event` breaks. After a break of the connection — closed, silent, refused for
/// load — it asks `on_break` and, unless it breaks, asks again from the cursor after a
/// pause that doubles from 100 ms to 5 s (and starts over after an event). A
/// verification failure ends it: the node or the connection lied.
pub fn follow(
    node: &NodeClient,
    verifier: &mut EventVerifier,
    mut on_event: impl FnMut(&VerifiedEvent) -> std::ops::ControlFlow<()>,
    mut on_break: impl FnMut(&ClientError) -> std::ops::ControlFlow<()>,
) -> Result<(), FollowError> {
    use std::ops::ControlFlow;
    let mut pause = Duration::from_millis(100);
    loop {
        let failure = match node.events(verifier.filter(), verifier.cursor()) {
            Ok(mut stream) => loop {
                match stream.next_event() {
                    Ok(ev) => {
                        if let Some(v) = verifier.accept(&ev)? {
                            pause = Duration::from_millis(100);
                            if on_event(&v).is_break() {
                                return Ok(());
                            }
                        }
                    }
                    Err(StreamError::Event(e)) => return Err(e.into()),
                    Err(StreamError::Node(e)) => break e,
                }
            },
            Err(e @ ClientError::Refused { status, .. }) if status != 503 && status != 429 => {
                return Err(FollowError::Refused(e));
            }
            Err(e) => e,
        };
        if on_break(&failure) == ControlFlow::Break(()) {
            return Err(FollowError::GaveUp(failure));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}
