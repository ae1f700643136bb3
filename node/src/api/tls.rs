//! The API over TLS (rustls): the server configuration read from a certificate chain and
//! key in PEM, and a listener that completes handshakes concurrently, each within
//! [`HANDSHAKE_TIME`], so a client that opens a connection and sends nothing (or
//! dribbles its hello) holds one connection slot for at most that long and never the
//! accept loop. Handshakes count against the connection cap of [`CappedListener`]: the
//! slot is taken at accept, before any TLS byte is read. A connection over the cap is
//! closed at once (a plain-HTTP `503` would be a broken TLS record to the client).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::limits::{CappedListener, CappedStream, ClientAddr};
use crate::metrics::Metrics;

/// How long a client has from its TCP connection to a finished TLS handshake.
pub const HANDSHAKE_TIME: Duration = Duration::from_secs(10);

/// Handshakes finished and not yet taken by the server: more wait in their tasks.
const READY_MAX: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("reading the TLS certificate chain {path}: {reason}")]
    Certificates { path: String, reason: String },
    #[error("the TLS certificate file {0} holds no certificate")]
    NoCertificate(String),
    #[error("reading the TLS private key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("the TLS certificate and key do not go together: {0}")]
    Mismatch(String),
}

/// The server configuration for `cert` (PEM, the leaf first, then any intermediates)
/// and `key` (PEM: PKCS#8, PKCS#1 or SEC1). TLS 1.3 and 1.2, HTTP/1.1 by ALPN.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let shown = |p: &Path| p.display().to_string();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| TlsSetupError::Certificates {
            path: shown(cert),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsSetupError::NoCertificate(shown(cert)));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsSetupError::Key {
        path: shown(key),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Mismatch(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsSetupError::Mismatch(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener whose connections are TLS streams. A background task accepts from the
/// capped listener and starts one handshake task per connection; the server takes
/// connections whose handshake finished.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<CappedStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: JoinHandle<()>,
}

impl TlsListener {
    pub fn new(
        mut inner: CappedListener,
        config: Arc<rustls::ServerConfig>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<TlsListener> {
        let local = inner.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(READY_MAX);
        let accepting = tokio::spawn(async move {
            loop {
                let (stream, addr) = inner.accept().await;
                let (acceptor, tx, metrics) = (acceptor.clone(), tx.clone(), metrics.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIME, acceptor.accept(stream)).await {
                        // A closed channel: the server stopped; the connection drops.
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => {
                            metrics.api_tls_handshakes_failed.inc();
                            tracing::debug!(%addr, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            metrics.api_tls_handshakes_failed.inc();
                            tracing::debug!(%addr, "TLS handshake not finished in time");
                        }
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            local,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<CappedStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task holds a sender until it is aborted, which only
            // dropping this listener does.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_certificate_and_key_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("node.pem"), dir.path().join("node.key"));
        let e = server_config(&cert, &key).unwrap_err();
        assert!(matches!(e, TlsSetupError::Certificates { .. }), "{e}");
        std::fs::write(&cert, "not a certificate\n").unwrap();
        let e = server_config(&cert, &key).unwrap_err();
        assert!(matches!(e, TlsSetupError::NoCertificate(_)), "{e}");
        assert!(e.to_string().contains("node.pem"), "{e}");
    }
}
