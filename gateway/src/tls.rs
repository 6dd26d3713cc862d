//! TLS server configuration from PEM files, shared by pgwire and Flight SQL.
//!
//! PEM is read with rustls' own `pki_types` parser. Errors name the file and
//! the problem (unreadable, not PEM, or no certificate / private key in it).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// Both ring and aws-lc-rs end up linked; pick one explicitly, once, before
/// any TLS is used.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Load a certificate chain and private key into a rustls server config.
pub fn server_config(cert: &Path, key: &Path, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, String> {
    install_crypto_provider();
    let certs = load_certs(cert)?;
    let key = load_key(key)?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Every certificate in a PEM file, in order (the chain, leaf first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let problem = |e: pem::Error| format!("{}: {}", path.display(), describe(e));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(problem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(problem)?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate found", path.display()));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => format!("{}: no PEM private key found", path.display()),
        e => format!("{}: {}", path.display(), describe(e)),
    })
}

/// A PEM error as a problem: an I/O error as the system says it.
fn describe(err: pem::Error) -> String {
    match err {
        pem::Error::Io(e) => e.to_string(),
        e => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_and_keys_are_read_and_problems_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let signed = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, signed.cert.pem()).unwrap();
        std::fs::write(&key, signed.signing_key.serialize_pem()).unwrap();
        assert_eq!(load_certs(&cert).unwrap().len(), 1);
        server_config(&cert, &key, &[b"postgresql"]).unwrap();

        let err = load_key(&cert).unwrap_err();
        assert!(err.ends_with("c.pem: no PEM private key found"), "{err}");
        let err = load_certs(&key).unwrap_err();
        assert!(err.ends_with("k.pem: no PEM certificate found"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = load_certs(&missing).unwrap_err();
        assert!(
            err.starts_with(&format!("{}: ", missing.display())),
            "{err}"
        );
        assert!(!err.contains("I/O error"), "{err}");
    }
}
