//! Who is asking (docs/privacy.md § Who is asking): a request without a signature is
//! the public; one signed under RFC 9421 (`xinlian_client::reqsig`) by a key the ledger
//! knows is that enterprise or member, or is refused with a code of its own. The
//! [`Reader`] found goes to the handlers as a request extension; answers to readers
//! other than the public are written to the access log before they leave.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use xinlian_client::disclosure::Reader;
use xinlian_client::ids::Uscc;
use xinlian_client::reqsig::{self, RequestParts, SigError, SignatureInput};
use xinlian_client::state::{self as st, key};
use xinlian_genesis::PublicKey;

use super::{ApiFailure, ApiState, err};

/// How far a signature's `created` may run ahead of this node's clock.
pub const CLOCK_SKEW_S: i64 = 30;
/// Longest a signature may be valid (`expires` − `created`): it bounds how long a nonce
/// is remembered.
pub const LIFETIME_S_MAX: i64 = 300;
/// Nonces remembered at once, and per key: past them signed requests wait (`503`), so
/// that one key cannot crowd the others out.
pub const NONCES_MAX: usize = 200_000;
pub const NONCES_PER_KEY_MAX: usize = 2_000;
/// Components every signature must cover; `content-digest` too when there is a body.
pub const REQUIRED: [&str; 3] = ["@method", "@path", "@query"];

/// When the request's signature expires (Unix seconds): a long-lived answer (an event
/// stream) ends then, and the reader signs again to go on.
#[derive(Clone, Copy, Debug)]
pub struct SignedUntil(pub i64);

/// Nonces seen in signatures still valid: a signature is accepted once.
#[derive(Default)]
pub struct Nonces(Mutex<NonceMemo>);

#[derive(Default)]
struct NonceMemo {
    /// (key id, nonce) → when it may be forgotten.
    seen: HashMap<(String, String), i64>,
    by_expiry: BTreeMap<(i64, u64), (String, String)>,
    per_key: HashMap<String, usize>,
    next: u64,
}

enum Fresh {
    Yes,
    Replayed,
    Full,
}

impl Nonces {
    fn admit(&self, keyid: &str, nonce: &str, forget_at: i64, now: i64) -> Fresh {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((&(at, seq), _)) = m.by_expiry.first_key_value() {
            if at > now {
                break;
            }
            let Some(k) = m.by_expiry.remove(&(at, seq)) else {
                break;
            };
            m.seen.remove(&k);
            if let Some(n) = m.per_key.get_mut(&k.0) {
                *n -= 1;
                if *n == 0 {
                    m.per_key.remove(&k.0);
                }
            }
        }
        let k = (keyid.to_string(), nonce.to_string());
        if m.seen.contains_key(&k) {
            return Fresh::Replayed;
        }
        if m.seen.len() >= NONCES_MAX
            || m.per_key.get(keyid).copied().unwrap_or(0) >= NONCES_PER_KEY_MAX
        {
            return Fresh::Full;
        }
        let seq = m.next;
        m.next += 1;
        m.seen.insert(k.clone(), forget_at);
        m.by_expiry.insert((forget_at, seq), k);
        *m.per_key.entry(keyid.to_string()).or_default() += 1;
        Fresh::Yes
    }
}

fn refuse(code: &str, message: impl Into<String>) -> ApiFailure {
    err(StatusCode::UNAUTHORIZED, code, message)
}

fn header_value(h: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<&str> = h
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// The request's reader, from its signature headers: the public when it has none.
/// Signed requests with a body have it read here (bounded by the API's largest body)
/// to check its `Content-Digest`, and put back.
pub async fn authenticate(
    State(s): State<ApiState>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let (req, reader) = match identify(&s, req).await {
        Ok(x) => x,
        Err(f) => return f.into_response(),
    };
    let label = reader.label();
    let raw = req.uri().path_and_query().map_or("", |p| p.as_str());
    // Logged decoded (an audit's search for a USCC finds it however it was encoded),
    // and whole: a signed request's target fits a log line or is refused.
    let target = percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned();
    if reader != Reader::Public && target.len() > xinlian_client::api::ACCESS_TARGET_BYTES_MAX {
        return err(
            StatusCode::URI_TOO_LONG,
            "target_too_long",
            format!(
                "a signed request's path and query are at most {} bytes (the access log records them whole)",
                xinlian_client::api::ACCESS_TARGET_BYTES_MAX
            ),
        )
        .into_response();
    }
    let method = req.method().to_string();
    let mut req = req;
    req.extensions_mut().insert(reader.clone());
    let answer = next.run(req).await;
    if reader == Reader::Public {
        return answer;
    }
    // Fail closed: an answer to a reader the log cannot record is not sent.
    match s
        .access
        .append(&label, &method, &target, answer.status().as_u16())
        .await
    {
        Ok(()) => answer,
        Err(e) => {
            tracing::error!(error = %e, "access log: write failed; answer withheld");
            err(
                StatusCode::SERVICE_UNAVAILABLE,
                "access_log",
                "this node cannot record the read in its access log; nothing was answered",
            )
            .into_response()
        }
    }
}

async fn identify(s: &ApiState, req: Request) -> Result<(Request, Reader), ApiFailure> {
    // No route takes another method: the router answers it (405), unsigned.
    if !matches!(req.method().as_str(), "GET" | "HEAD" | "POST") {
        return Ok((req, Reader::Public));
    }
    let headers = req.headers();
    let (input, signature) = match (
        header_value(headers, "signature-input"),
        header_value(headers, "signature"),
    ) {
        (None, None) => return Ok((req, Reader::Public)),
        (Some(i), Some(s)) => (i, s),
        _ => {
            return Err(refuse(
                "signature_malformed",
                "Signature and Signature-Input go together",
            ));
        }
    };
    let sig = reqsig::parse(&input, &signature)
        .map_err(|e| refuse("signature_malformed", e.to_string()))?;
    let (keyid, nonce, created, expires) = required_params(&sig)?;
    let now = super::now_ms() / 1000;
    if created > now + CLOCK_SKEW_S {
        return Err(refuse(
            "signature_not_yet_valid",
            format!(
                "created {created} is ahead of this node's clock ({now}) by more than {CLOCK_SKEW_S} s"
            ),
        ));
    }
    if expires < now {
        return Err(refuse(
            "signature_expired",
            format!("the signature expired at {expires}; it is {now}"),
        ));
    }
    let has_body = body_expected(&req);
    if has_body && !matches!(req.method().as_str(), "POST") {
        return Err(refuse("signature_malformed", "a GET request has no body"));
    }
    if has_body && !sig.components.iter().any(|c| c == "content-digest") {
        return Err(refuse(
            "signature_malformed",
            "a request with a body must cover content-digest",
        ));
    }
    let (reader, keys) = keys_of(s, &keyid)?;
    let (parts, body) = req.into_parts();
    // The signature first, over the headers alone (the body is bound by its digest):
    // nobody gets a body read, nor a nonce remembered, without a key's signature.
    verify(&sig, &parts, &keys, &keyid)?;
    match s.nonces.admit(&keyid, &nonce, expires + CLOCK_SKEW_S, now) {
        Fresh::Yes => {}
        Fresh::Replayed => {
            return Err(refuse(
                "signature_replayed",
                format!("nonce {nonce} of {keyid} was used already"),
            ));
        }
        Fresh::Full => {
            return Err(err(
                StatusCode::SERVICE_UNAVAILABLE,
                "signatures_busy",
                "too many signatures still valid are remembered; retry",
            )
            .retry_after(1));
        }
    }
    let body = if has_body {
        // Bounded by the largest body any route takes; each route bounds its own after.
        let bytes = axum::body::to_bytes(body, s.check_body_bytes_max)
            .await
            .map_err(|_| {
                err(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!(
                        "bodies of signed requests are read up to {} bytes",
                        s.check_body_bytes_max
                    ),
                )
            })?;
        let digest = header_value(&parts.headers, "content-digest").unwrap_or_default();
        if !reqsig::digest_matches(&digest, &bytes) {
            return Err(refuse(
                "signature_invalid",
                "Content-Digest does not match the body (sha-256)",
            ));
        }
        axum::body::Body::from(bytes)
    } else {
        body
    };
    let mut parts = parts;
    parts.extensions.insert(SignedUntil(expires));
    Ok((Request::from_parts(parts, body), reader))
}

fn verify(
    sig: &SignatureInput,
    parts: &axum::http::request::Parts,
    keys: &[PublicKey],
    keyid: &str,
) -> Result<(), ApiFailure> {
    let header = |n: &str| header_value(&parts.headers, n);
    let request = RequestParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        authority: parts.headers.get("host").and_then(|h| h.to_str().ok()),
        scheme: "http",
        header: &header,
    };
    if keys.iter().any(|k| sig.verify(&request, k).is_ok()) {
        return Ok(());
    }
    Err(match keys.first().map(|k| sig.verify(&request, k)) {
        Some(Err(SigError::MissingComponent(c))) => refuse(
            "signature_malformed",
            format!("covered component {c} is not in the request"),
        ),
        _ => refuse(
            "signature_invalid",
            format!("the signature does not verify under the key of {keyid}"),
        ),
    })
}

fn required_params(sig: &SignatureInput) -> Result<(String, String, i64, i64), ApiFailure> {
    let p = &sig.params;
    if let Some(a) = &p.alg
        && a != "ed25519"
    {
        return Err(refuse(
            "signature_malformed",
            format!("alg {a} is not ed25519"),
        ));
    }
    for c in REQUIRED {
        if !sig.components.iter().any(|x| x == c) {
            return Err(refuse(
                "signature_malformed",
                format!("the signature must cover {c}"),
            ));
        }
    }
    let (Some(keyid), Some(nonce), Some(created), Some(expires)) =
        (&p.keyid, &p.nonce, p.created, p.expires)
    else {
        return Err(refuse(
            "signature_malformed",
            "keyid, nonce, created and expires are all required",
        ));
    };
    if nonce.len() < 8 {
        return Err(refuse(
            "signature_malformed",
            "a nonce has at least 8 characters",
        ));
    }
    if expires < created || expires - created > LIFETIME_S_MAX {
        return Err(refuse(
            "signature_malformed",
            format!("a signature is valid for at most {LIFETIME_S_MAX} s (expires − created)"),
        ));
    }
    Ok((keyid.clone(), nonce.clone(), created, expires))
}

fn body_expected(req: &Request) -> bool {
    let length = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match length {
        Some(n) => n > 0,
        None => req
            .headers()
            .contains_key(axum::http::header::TRANSFER_ENCODING),
    }
}

/// The reader a key id names, and the keys its signature may be under: a member's
/// signing key or node key in the roster in force, an enterprise's bound key.
fn keys_of(s: &ApiState, keyid: &str) -> Result<(Reader, Vec<PublicKey>), ApiFailure> {
    let unknown = || {
        refuse(
            "signature_unknown_key",
            format!("no key in force for {keyid} (member:ID, enterprise:USCC or key:HEX)"),
        )
    };
    match keyid.split_once(':') {
        Some(("member", id)) => {
            let c = s.shared.consortium();
            let m = c
                .roster
                .members
                .iter()
                .find(|m| m.id == id)
                .ok_or_else(unknown)?;
            let mut keys = vec![m.signing_key];
            keys.extend(m.node_key);
            Ok((Reader::Member(id.to_string()), keys))
        }
        Some(("enterprise", u)) => {
            let u = Uscc(u.to_string());
            u.check_format().map_err(|_| unknown())?;
            let entity: Option<st::Entity> = s.shared.store.state_value(&key::entity(&u))?;
            let k = entity.and_then(|e| e.key).ok_or_else(unknown)?;
            Ok((Reader::Enterprise(u), vec![k]))
        }
        // The key itself: whoever holds a key the ledger knows signs without naming
        // who it is (a submitter sending its record's private data, say).
        Some(("key", hex)) => {
            let k = PublicKey::from_hex(hex).map_err(|_| unknown())?;
            let c = s.shared.consortium();
            if let Some(m) = c
                .roster
                .members
                .iter()
                .find(|m| m.signing_key == k || m.node_key == Some(k))
            {
                return Ok((Reader::Member(m.id.clone()), vec![k]));
            }
            // A custody key reads as its own party, never as the enterprise behind it.
            if let Some(ck) =
                (s.shared.store).state_value::<st::CustodyKey>(&key::custody_key(&k))?
            {
                return match ck.revoked_at {
                    None => Ok((Reader::Custody(k), vec![k])),
                    Some(_) => Err(unknown()),
                };
            }
            let binding: Option<st::KeyBinding> =
                s.shared.store.state_value(&key::key_binding(&k))?;
            let u = binding
                .filter(|b| b.revoked_at.is_none())
                .map(|b| b.uscc)
                .ok_or_else(unknown)?;
            let entity: Option<st::Entity> = s.shared.store.state_value(&key::entity(&u))?;
            if entity.and_then(|e| e.key) != Some(k) {
                return Err(unknown());
            }
            Ok((Reader::Enterprise(u), vec![k]))
        }
        _ => Err(unknown()),
    }
}
