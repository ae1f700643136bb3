//! The devnet's own certificates: a CA made on first use (`DIR/tls/ca.pem`, its key
//! `ca.key` beside it, 0600) and one certificate per node for `127.0.0.1` and
//! `localhost`, issued when a node has none. Clients trust `ca.pem` alone
//! (`xinlian --ca`, `curl --cacert`). Devnet keys are for loopback tests; a real
//! consortium's certificates come from its own CA (docs/operations.md § TLS).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use xinlian_client::http::NodeClient;

/// A node's certificate chain and key files.
#[derive(Clone, Debug)]
pub struct NodeTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The devnet's CA certificate, what clients trust.
pub fn ca_path(dir: &Path) -> PathBuf {
    dir.join("tls").join("ca.pem")
}

fn ca_key_path(dir: &Path) -> PathBuf {
    dir.join("tls").join("ca.key")
}

/// Member `id`'s node certificate and key, issued by the devnet's CA if missing.
pub fn node_tls(dir: &Path, id: &str) -> Result<NodeTls> {
    let files = NodeTls {
        cert: dir.join("tls").join(format!("{id}.pem")),
        key: dir.join("tls").join(format!("{id}.key")),
    };
    // The CA first: made anew (its files were lost), it clears every certificate the
    // old one issued, so none is kept that clients would refuse.
    let ca_key = ca(dir)?;
    if files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    let ca_cert = ca_params()
        .self_signed(&ca_key)
        .context("re-creating the devnet CA for signing")?;
    let key = KeyPair::generate().context("generating a node's TLS key")?;
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
        .context("the node certificate's names")?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("xinlian devnet node {id}"));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = params
        .signed_by(&key, &ca_cert, &ca_key)
        .context("issuing a node certificate")?;
    write_private(&files.key, &key.serialize_pem())?;
    write_public(&files.cert, &cert.pem())?;
    Ok(files)
}

/// A client for `api` that trusts the devnet's CA when `api` is `https://`.
pub fn client(dir: &Path, api: &str) -> Result<NodeClient> {
    let client = NodeClient::new(api);
    if !api.starts_with("https://") {
        return Ok(client);
    }
    Ok(client.trusting_file(&ca_path(dir))?)
}

/// What the CA certificate says; the same each time, so a CA re-created from its key
/// issues certificates its first self-signed copy verifies.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "xinlian devnet CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// The CA's key, making the CA (key and certificate) on first use.
fn ca(dir: &Path) -> Result<KeyPair> {
    let (cert_path, key_path) = (ca_path(dir), ca_key_path(dir));
    if cert_path.exists() && key_path.exists() {
        let pem = std::fs::read_to_string(&key_path)
            .with_context(|| format!("reading {}", key_path.display()))?;
        return KeyPair::from_pem(&pem).with_context(|| format!("{}", key_path.display()));
    }
    std::fs::create_dir_all(dir.join("tls"))?;
    for entry in std::fs::read_dir(dir.join("tls"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "pem" || e == "key") {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    let key = KeyPair::generate().context("generating the devnet CA's key")?;
    let cert = ca_params()
        .self_signed(&key)
        .context("making the devnet CA")?;
    write_private(&key_path, &key.serialize_pem())?;
    write_public(&cert_path, &cert.pem())?;
    Ok(key)
}

/// Writes a private key readable by its owner alone.
fn write_private(path: &Path, pem: &str) -> Result<()> {
    write_whole(path, pem, 0o600)
}

fn write_public(path: &Path, pem: &str) -> Result<()> {
    write_whole(path, pem, 0o644)
}

/// Writes `pem` to a temporary file with `mode` and renames it to `path`: a crash
/// leaves the old file or the whole new one, never half of one that `exists()` would
/// then accept.
fn write_whole(path: &Path, pem: &str, mode: u32) -> Result<()> {
    use std::io::Write;
    // `X.pem.tmp`, `X.key.tmp`: each file its own temporary name.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_made_again_from_its_key_issues_what_the_first_certificate_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let first = node_tls(dir.path(), "a").unwrap();
        let ca_first = std::fs::read(ca_path(dir.path())).unwrap();
        // Issued later, by the CA re-created from its key.
        let second = node_tls(dir.path(), "b").unwrap();
        assert_eq!(std::fs::read(ca_path(dir.path())).unwrap(), ca_first);
        for files in [&first, &second] {
            verify(&ca_first, &std::fs::read(&files.cert).unwrap(), "127.0.0.1").unwrap();
            verify(&ca_first, &std::fs::read(&files.cert).unwrap(), "localhost").unwrap();
            assert!(
                verify(
                    &ca_first,
                    &std::fs::read(&files.cert).unwrap(),
                    "example.org"
                )
                .is_err()
            );
        }
        // Another devnet's CA does not vouch for them.
        let other = tempfile::tempdir().unwrap();
        node_tls(other.path(), "a").unwrap();
        let other_ca = std::fs::read(ca_path(other.path())).unwrap();
        assert!(verify(&other_ca, &std::fs::read(&first.cert).unwrap(), "127.0.0.1").is_err());
        // A CA made anew (its key lost) issues its nodes new certificates.
        std::fs::remove_file(ca_key_path(dir.path())).unwrap();
        let again = node_tls(dir.path(), "a").unwrap();
        let ca_again = std::fs::read(ca_path(dir.path())).unwrap();
        assert_ne!(ca_again, ca_first);
        verify(&ca_again, &std::fs::read(&again.cert).unwrap(), "127.0.0.1").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in [&again.key, &ca_key_path(dir.path())] {
                let mode = std::fs::metadata(key).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{}", key.display());
            }
        }
    }

    /// What a TLS client checks of a server certificate, with `ca` its only root.
    fn verify(ca: &[u8], cert: &[u8], name: &str) -> Result<(), rustls::Error> {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca).unwrap())
            .unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        verifier
            .verify_server_cert(
                &CertificateDer::from_pem_slice(cert).unwrap(),
                &[],
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
    }
}
