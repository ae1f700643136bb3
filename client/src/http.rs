//! A blocking client for the node's HTTP API, and a signer that turns record bodies
//! into signed records for one chain.

use std::time::Duration;

use rand_core::RngCore;
use xinlian_genesis::Hash32;
use xinlian_genesis::keys::{SigningKey, public_key};

use crate::api::{ApiError, BatchView, BlockView, EnterpriseView, RecordView, Status, Submitted};
use crate::record::{Body, Envelope, SignedRecord};

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

pub struct NodeClient {
    base: String,
    agent: ureq::Agent,
}

impl NodeClient {
    pub fn new(base_url: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(40)))
            .http_status_as_error(false)
            .build()
            .into();
        NodeClient {
            base: base_url.trim_end_matches('/').to_string(),
            agent,
        }
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
        self.read(self.agent.get(&format!("{}{path}", self.base)).call())
    }

    pub fn status(&self) -> Result<Status, ClientError> {
        self.get("/v1/status")
    }

    /// Submits canonical bytes; returns the id as soon as the node has admitted it.
    pub fn submit(&self, rec: &SignedRecord) -> Result<Submitted, ClientError> {
        let req = self
            .agent
            .post(&format!("{}/v1/records", self.base))
            .header("content-type", "application/octet-stream");
        self.read(req.send(&rec.canonical_bytes()[..]))
    }

    /// Submits and waits up to `wait_ms` for the record to be final.
    pub fn submit_and_wait(
        &self,
        rec: &SignedRecord,
        wait_ms: u64,
    ) -> Result<RecordView, ClientError> {
        let req = self
            .agent
            .post(&format!("{}/v1/records?wait_ms={wait_ms}", self.base))
            .header("content-type", "application/octet-stream");
        self.read(req.send(&rec.canonical_bytes()[..]))
    }

    pub fn record(
        &self,
        id: &crate::record::RecordId,
        wait_ms: u64,
    ) -> Result<RecordView, ClientError> {
        self.get(&format!("/v1/records/{id}?wait_ms={wait_ms}"))
    }

    pub fn block(&self, height: u64) -> Result<BlockView, ClientError> {
        self.get(&format!("/v1/blocks/{height}"))
    }

    pub fn enterprise(&self, uscc: &str) -> Result<EnterpriseView, ClientError> {
        self.get(&format!("/v1/enterprises/{uscc}"))
    }

    pub fn batch(&self, batch: &str) -> Result<BatchView, ClientError> {
        self.get(&format!("/v1/batches/{batch}"))
    }
}

/// Signs bodies for one chain with one key, each with a fresh random nonce.
pub struct RecordSigner {
    pub key: SigningKey,
    pub chain: Hash32,
}

impl RecordSigner {
    pub fn sign(&self, body: impl Into<Body>) -> SignedRecord {
        let env = Envelope {
            chain: self.chain,
            signer: public_key(&self.key),
            nonce: rand_core::OsRng.next_u64(),
            body: body.into(),
        };
        env.sign(&self.key)
    }
}
