//! Who is asking: HTTP Message Signatures (RFC 9421) with ed25519, the keys enterprises
//! and members already hold (docs/privacy.md § Who is asking). Written here, once, for
//! both sides: the CLI and client library sign requests with it, the node checks them.
//!
//! The subset: one signature per request, labelled by any key, over derived components
//! (`@method`, `@path`, `@query`, `@authority`, `@target-uri`, `@scheme`) and header
//! fields named in lower case; parameters `created`, `expires`, `nonce`, `keyid`, `alg`.
//! The signature is ed25519 over the signature base exactly as RFC 9421 § 3.3.6 says,
//! checked under ZIP-215 like every signature here. A signature base starts with `"`,
//! so no signature over one can be read as one over a record, a vote or a key proof:
//! their messages start with `xinlian/`. Anything outside the subset is refused as
//! malformed, never guessed at.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

use crate::crypto::{self, Signature};
use xinlian_genesis::PublicKey;

/// The label our signer uses.
pub const LABEL: &str = "xl";
/// Longest `Signature-Input` or `Signature` header read.
pub const HEADER_BYTES_MAX: usize = 2048;
/// Most covered components.
pub const COMPONENTS_MAX: usize = 16;
/// Longest nonce and key id.
pub const NONCE_BYTES_MAX: usize = 64;
pub const KEYID_BYTES_MAX: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("signature headers are malformed: {0}")]
    Malformed(String),
    #[error("covered component {0} is not in the request")]
    MissingComponent(String),
    #[error("the signature does not verify")]
    Invalid,
}

fn malformed(what: impl Into<String>) -> SigError {
    SigError::Malformed(what.into())
}

/// The signature's parameters (RFC 9421 § 2.3), in the order they were given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    pub created: Option<i64>,
    pub expires: Option<i64>,
    pub nonce: Option<String>,
    pub keyid: Option<String>,
    pub alg: Option<String>,
    /// Names in order of appearance: the serialization keeps it.
    order: Vec<&'static str>,
}

/// A parsed `Signature-Input` member and its `Signature`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureInput {
    pub label: String,
    /// Component identifiers, lower case, as covered.
    pub components: Vec<String>,
    pub params: Params,
    pub signature: Signature,
}

/// What a request offers to the signature base.
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The path, as sent (percent-encoding kept).
    pub path: &'a str,
    /// The query without `?`, if any.
    pub query: Option<&'a str>,
    pub authority: Option<&'a str>,
    pub scheme: &'a str,
    /// A header field's value by lower-case name (several lines joined by `, `).
    pub header: &'a dyn Fn(&str) -> Option<String>,
}

impl SignatureInput {
    /// The `@signature-params` value: the inner list and its parameters, serialized as
    /// RFC 8941 does.
    pub fn params_value(&self) -> String {
        let mut s = String::from("(");
        for (i, c) in self.components.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push('"');
            s.push_str(c);
            s.push('"');
        }
        s.push(')');
        let p = &self.params;
        for name in &p.order {
            match *name {
                "created" => s += &format!(";created={}", p.created.unwrap_or_default()),
                "expires" => s += &format!(";expires={}", p.expires.unwrap_or_default()),
                "nonce" => s += &format!(";nonce=\"{}\"", p.nonce.as_deref().unwrap_or("")),
                "keyid" => s += &format!(";keyid=\"{}\"", p.keyid.as_deref().unwrap_or("")),
                "alg" => s += &format!(";alg=\"{}\"", p.alg.as_deref().unwrap_or("")),
                _ => {}
            }
        }
        s
    }

    /// The signature base (RFC 9421 § 2.5): one line per covered component, then the
    /// parameters.
    pub fn base(&self, req: &RequestParts<'_>) -> Result<String, SigError> {
        let mut out = String::new();
        for c in &self.components {
            let value = component(c, req)?;
            out += &format!("\"{c}\": {value}\n");
        }
        out += &format!("\"@signature-params\": {}", self.params_value());
        Ok(out)
    }

    /// Checks the signature over `req` under `key`.
    pub fn verify(&self, req: &RequestParts<'_>, key: &PublicKey) -> Result<(), SigError> {
        let base = self.base(req)?;
        crypto::verify_raw(key, base.as_bytes(), &self.signature).map_err(|_| SigError::Invalid)
    }

    /// The two header values to send: `Signature-Input` and `Signature`.
    pub fn headers(&self) -> (String, String) {
        (
            format!("{}={}", self.label, self.params_value()),
            format!("{}=:{}:", self.label, B64.encode(self.signature.0)),
        )
    }
}

fn component(name: &str, req: &RequestParts<'_>) -> Result<String, SigError> {
    let missing = || SigError::MissingComponent(name.to_string());
    Ok(match name {
        "@method" => req.method.to_string(),
        "@path" => req.path.to_string(),
        "@query" => format!("?{}", req.query.unwrap_or("")),
        "@authority" => req.authority.ok_or_else(missing)?.to_ascii_lowercase(),
        "@scheme" => req.scheme.to_ascii_lowercase(),
        "@target-uri" => {
            let authority = req.authority.ok_or_else(missing)?;
            match req.query {
                Some(q) => format!("{}://{authority}{}?{q}", req.scheme, req.path),
                None => format!("{}://{authority}{}", req.scheme, req.path),
            }
        }
        n if n.starts_with('@') => {
            return Err(malformed(format!("component {n} is not supported")));
        }
        n => {
            let v = (req.header)(n).ok_or_else(missing)?;
            // § 2.1: leading and trailing whitespace removed; obs-fold is not ours to
            // meet (HTTP/1.1 parsers refuse it).
            v.trim().to_string()
        }
    })
}

/// `Content-Digest` (RFC 9530) of a body: what a signature covering `content-digest`
/// binds the body with.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", B64.encode(Sha256::digest(body)))
}

/// Whether `header` is the `Content-Digest` of `body`: only `sha-256` is read.
pub fn digest_matches(header: &str, body: &[u8]) -> bool {
    header
        .split(',')
        .filter_map(|m| m.trim().strip_prefix("sha-256="))
        .any(|v| v == format!(":{}:", B64.encode(Sha256::digest(body))))
}

/// Parses the request's `Signature-Input` and `Signature` header values: exactly one
/// signature, in the subset above.
pub fn parse(input: &str, signature: &str) -> Result<SignatureInput, SigError> {
    if input.len() > HEADER_BYTES_MAX || signature.len() > HEADER_BYTES_MAX {
        return Err(malformed("a signature header is too long"));
    }
    let (label, rest) = input
        .trim()
        .split_once('=')
        .ok_or_else(|| malformed("Signature-Input has no label"))?;
    check_key(label)?;
    let (sig_label, sig_value) = signature
        .trim()
        .split_once('=')
        .ok_or_else(|| malformed("Signature has no label"))?;
    if sig_label != label {
        return Err(malformed(
            "Signature and Signature-Input name different labels",
        ));
    }
    let b64 = sig_value
        .strip_prefix(':')
        .and_then(|s| s.strip_suffix(':'))
        .ok_or_else(|| {
            malformed("Signature is not one byte sequence (one signature per request)")
        })?;
    let bytes = B64
        .decode(b64)
        .map_err(|_| malformed("Signature is not base64"))?;
    let signature = Signature(
        bytes
            .try_into()
            .map_err(|_| malformed("an ed25519 signature is 64 bytes"))?,
    );
    let inner = rest
        .strip_prefix('(')
        .ok_or_else(|| malformed("Signature-Input is not an inner list"))?;
    let (list, params) = inner
        .split_once(')')
        .ok_or_else(|| malformed("Signature-Input's inner list is not closed"))?;
    let mut components = Vec::new();
    for item in list.split(' ').filter(|s| !s.is_empty()) {
        let name = item
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .ok_or_else(|| malformed(format!("component {item} is not a string")))?;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_@.".contains(&b))
        {
            return Err(malformed(format!(
                "component \"{name}\" is not a lower-case name (parameters on components are not supported)"
            )));
        }
        if components.iter().any(|c| c == name) {
            return Err(malformed(format!("component \"{name}\" is covered twice")));
        }
        components.push(name.to_string());
    }
    if components.len() > COMPONENTS_MAX {
        return Err(malformed("too many covered components"));
    }
    Ok(SignatureInput {
        label: label.to_string(),
        components,
        params: parse_params(params)?,
        signature,
    })
}

fn check_key(k: &str) -> Result<(), SigError> {
    let ok = k.len() <= 32
        && k.starts_with(|c: char| c.is_ascii_lowercase() || c == '*')
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(malformed(format!("'{k}' is not a structured-field key")))
    }
}

fn parse_params(mut s: &str) -> Result<Params, SigError> {
    let mut p = Params::default();
    while !s.is_empty() {
        s = s
            .strip_prefix(';')
            .ok_or_else(|| malformed("parameters must each start with ';'"))?;
        let (name, rest) = s
            .split_once('=')
            .ok_or_else(|| malformed("a parameter has no value"))?;
        let (value, rest) = if let Some(q) = rest.strip_prefix('"') {
            let end = q
                .find('"')
                .ok_or_else(|| malformed("a string parameter is not closed"))?;
            let v = &q[..end];
            if v.contains('\\') || !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err(malformed(
                    "string parameters must be printable ASCII without escapes",
                ));
            }
            (Value::Text(v), &q[end + 1..])
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            let digits = &rest[..end];
            if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(malformed(format!(
                    "parameter {name} is not a non-negative integer"
                )));
            }
            let n: i64 = digits.parse().map_err(|_| malformed("integer parameter"))?;
            (Value::Int(n), &rest[end..])
        };
        let slot: &'static str = match (name, value) {
            ("created", Value::Int(n)) => {
                p.created = Some(n);
                "created"
            }
            ("expires", Value::Int(n)) => {
                p.expires = Some(n);
                "expires"
            }
            ("nonce", Value::Text(t)) if t.len() <= NONCE_BYTES_MAX => {
                p.nonce = Some(t.to_string());
                "nonce"
            }
            ("keyid", Value::Text(t)) if t.len() <= KEYID_BYTES_MAX => {
                p.keyid = Some(t.to_string());
                "keyid"
            }
            ("alg", Value::Text(t)) => {
                p.alg = Some(t.to_string());
                "alg"
            }
            (n, _) => {
                return Err(malformed(format!(
                    "parameter {n} is not supported or too long"
                )));
            }
        };
        if p.order.contains(&slot) {
            return Err(malformed(format!("parameter {slot} is given twice")));
        }
        p.order.push(slot);
        s = rest;
    }
    Ok(p)
}

#[derive(Clone, Copy)]
enum Value<'a> {
    Int(i64),
    Text(&'a str),
}

/// What a signer puts in a request's signature.
pub struct SignRequest<'a> {
    pub keyid: &'a str,
    pub created: i64,
    pub expires: i64,
    pub nonce: &'a str,
    /// Covered components, `@method`, `@path`, `@query` first; `content-digest` when
    /// there is a body (its header must be set: [`content_digest`]).
    pub components: &'a [&'a str],
}

/// Signs `req` as `what` says; the caller sends [`SignatureInput::headers`].
pub fn sign(
    key: &SigningKey,
    what: &SignRequest<'_>,
    req: &RequestParts<'_>,
) -> Result<SignatureInput, SigError> {
    let mut input = SignatureInput {
        label: LABEL.into(),
        components: what.components.iter().map(|c| c.to_string()).collect(),
        params: Params {
            created: Some(what.created),
            expires: Some(what.expires),
            nonce: Some(what.nonce.to_string()),
            keyid: Some(what.keyid.to_string()),
            alg: Some("ed25519".into()),
            order: vec!["created", "expires", "nonce", "keyid", "alg"],
        },
        signature: Signature([0; 64]),
    };
    let base = input.base(req)?;
    input.signature = crypto::sign_raw(key, base.as_bytes());
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    /// RFC 9421 Appendix B.1.4's test key (published for testing only).
    fn rfc_key() -> SigningKey {
        let d = URL_SAFE_NO_PAD
            .decode("n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU")
            .unwrap();
        SigningKey::from_bytes(&d.try_into().unwrap())
    }

    fn rfc_request_header(name: &str) -> Option<String> {
        match name {
            "date" => Some("Tue, 20 Apr 2021 02:07:55 GMT".into()),
            "content-type" => Some("application/json".into()),
            "content-length" => Some("18".into()),
            _ => None,
        }
    }

    fn rfc_request() -> RequestParts<'static> {
        RequestParts {
            method: "POST",
            path: "/foo",
            query: Some("param=Value&Pet=dog"),
            authority: Some("example.com"),
            scheme: "https",
            header: &rfc_request_header,
        }
    }

    /// RFC 9421 Appendix B.2.6, "Signing a Request Using ed25519": the same signature
    /// base, and (ed25519 being deterministic) the same signature bytes.
    #[test]
    fn the_rfc_9421_ed25519_example_is_reproduced_and_verifies() {
        let input = parse(
            r#"sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#,
            "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:",
        )
        .unwrap();
        let req = rfc_request();
        let base = input.base(&req).unwrap();
        assert_eq!(
            base,
            "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\"@method\": POST\n\"@path\": /foo\n\"@authority\": example.com\n\"content-type\": application/json\n\"content-length\": 18\n\"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\""
        );
        let key = rfc_key();
        assert_eq!(crypto::sign_raw(&key, base.as_bytes()), input.signature);
        let public = PublicKey(key.verifying_key().to_bytes());
        input.verify(&req, &public).unwrap();
        let (i, s) = input.headers();
        assert_eq!(
            parse(&i, &s).unwrap(),
            input,
            "our headers parse back to the same"
        );
    }

    #[test]
    fn any_change_to_a_covered_component_breaks_the_signature() {
        let key = rfc_key();
        let public = PublicKey(key.verifying_key().to_bytes());
        let what = SignRequest {
            keyid: "member:sh-amr",
            created: 1_800_000_000,
            expires: 1_800_000_060,
            nonce: "00ff",
            components: &["@method", "@path", "@query"],
        };
        let signed = sign(&key, &what, &rfc_request()).unwrap();
        let (i, s) = signed.headers();
        let got = parse(&i, &s).unwrap();
        got.verify(&rfc_request(), &public).unwrap();
        for (method, path, query) in [
            ("GET", "/foo", Some("param=Value&Pet=dog")),
            ("POST", "/fo", Some("param=Value&Pet=dog")),
            ("POST", "/foo", Some("param=Value&Pet=cat")),
            ("POST", "/foo", None),
        ] {
            let req = RequestParts {
                method,
                path,
                query,
                ..rfc_request()
            };
            assert_eq!(got.verify(&req, &public), Err(SigError::Invalid));
        }
        // A parameter changed in the header is a different base.
        let forged = i.replace("expires=1800000060", "expires=1900000060");
        assert_eq!(
            parse(&forged, &s).unwrap().verify(&rfc_request(), &public),
            Err(SigError::Invalid)
        );
    }

    #[test]
    fn headers_outside_the_subset_are_refused_by_name() {
        let sig = format!("a=:{}:", B64.encode([0u8; 64]));
        for (input, why) in [
            ("a=(\"@method\");created=1, b=(\"@path\")", "integer"),
            ("a=(\"@method\";req)", "not a string"),
            ("a=(\"@Method\")", "lower-case"),
            ("a=(\"@method\" \"@method\")", "twice"),
            ("a=(\"@method\");created=1;created=2", "twice"),
            ("a=(\"@method\");created=-1", "integer"),
            ("a=(\"@method\");tag=\"x\"", "not supported"),
            ("a=(\"@method\");nonce=\"a\\\"b\"", "escapes"),
            ("a=\"@method\"", "inner list"),
            ("A=(\"@method\")", "key"),
        ] {
            match parse(input, &sig) {
                Err(SigError::Malformed(m)) => assert!(m.contains(why), "{input}: {m}"),
                other => panic!("{input}: {other:?}"),
            }
        }
        assert!(matches!(
            parse("a=()", "b=:AA==:"),
            Err(SigError::Malformed(_))
        ));
        assert!(matches!(
            parse("a=()", "a=:AA==:"),
            Err(SigError::Malformed(_))
        ));
        let long = format!("a=(\"{}\")", "x".repeat(HEADER_BYTES_MAX));
        assert!(matches!(parse(&long, &sig), Err(SigError::Malformed(_))));
    }

    #[test]
    fn a_content_digest_binds_the_body() {
        let d = content_digest(b"{\"hello\": \"world\"}");
        assert_eq!(d, "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:");
        assert!(digest_matches(&d, b"{\"hello\": \"world\"}"));
        assert!(!digest_matches(&d, b"{\"hello\": \"world!\"}"));
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(input in ".{0,200}", sig in ".{0,120}") {
            let _ = parse(&input, &sig);
        }
    }
}
