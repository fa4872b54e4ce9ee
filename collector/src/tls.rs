//! TLS: a configured certificate, or a self-signed one made on first start and kept in
//! the data directory, so agents can pin its fingerprint
//! (`sha256:` + hex of the SHA-256 of the certificate's DER).
//!
//! The rustls crypto provider is chosen explicitly (aws-lc-rs) rather than taken from
//! the process default: several providers may be compiled in, and then rustls cannot
//! pick one by itself.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The self-signed certificate, under the data directory.
pub const CERT_FILE: &str = "tls/collector-cert.pem";
/// Its private key (mode 0600).
pub const KEY_FILE: &str = "tls/collector-key.pem";

/// A TLS problem.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The certificate could not be made.
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(String),
    /// rustls refused the certificate or key.
    #[error("the TLS certificate or key cannot be used: {0}")]
    Config(String),
}

fn file_err(path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// A certificate chain and its key.
#[derive(Debug)]
pub struct Material {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The key.
    pub key: PrivateKeyDer<'static>,
    /// The leaf's fingerprint.
    pub fingerprint: String,
    /// Whether it was made just now.
    pub generated: bool,
}

/// `sha256:` and the hex SHA-256 of a certificate's DER.
pub fn fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

/// Reads a PEM certificate chain and key.
pub fn load(cert: &Path, key: &Path) -> Result<Material, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err(cert, format!("cannot read the certificate: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(cert, format!("cannot read the certificate: {e}")))?;
    let leaf = chain.first().ok_or_else(|| {
        file_err(
            cert,
            "no certificate (-----BEGIN CERTIFICATE-----) in the file",
        )
    })?;
    let fingerprint = fingerprint(leaf.as_ref());
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| file_err(key, format!("cannot read the private key: {e}")))?;
    Ok(Material {
        chain,
        key,
        fingerprint,
        generated: false,
    })
}

/// The certificate of the data directory, if one was made.
pub fn existing_self_signed(data_dir: &Path) -> Result<Option<String>, TlsError> {
    let cert = data_dir.join(CERT_FILE);
    if !cert.exists() {
        return Ok(None);
    }
    certificate_fingerprint(&cert).map(Some)
}

/// The fingerprint of the first certificate in a PEM file.
pub fn certificate_fingerprint(cert: &Path) -> Result<String, TlsError> {
    let leaf = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err(cert, format!("cannot read the certificate: {e}")))?
        .next()
        .ok_or_else(|| file_err(cert, "no certificate in the file"))?
        .map_err(|e| file_err(cert, format!("cannot read the certificate: {e}")))?;
    Ok(fingerprint(leaf.as_ref()))
}

/// The self-signed certificate of the data directory, made on first use.
pub fn self_signed(data_dir: &Path) -> Result<Material, TlsError> {
    let cert = data_dir.join(CERT_FILE);
    let key = data_dir.join(KEY_FILE);
    // The key is written first, so a cert without its key is not ours to replace.
    match (cert.exists(), key.exists()) {
        (true, true) => return load(&cert, &key),
        (true, false) => {
            return Err(file_err(
                &key,
                format!(
                    "missing, but its certificate {} exists; restore the key, or remove the certificate to make a new pair (agents that pinned the old fingerprint must then be told the new one)",
                    cert.display()
                ),
            ))
        }
        // A key without a certificate: interrupted before the certificate was written,
        // so it was never served. Make a new pair.
        _ => {}
    }
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(h) = hostname() {
        names.push(h);
    }
    let made =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    let dir = cert.parent().unwrap_or(data_dir);
    create_private_dir(dir)?;
    write_file(&key, made.signing_key.serialize_pem().as_bytes(), true)?;
    write_file(&cert, made.cert.pem().as_bytes(), false)?;
    let mut m = load(&cert, &key)?;
    m.generated = true;
    Ok(m)
}

/// This machine's host name, when it is a usable DNS name.
fn hostname() -> Option<String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()?;
    let h = raw.trim().to_ascii_lowercase();
    let ok = !h.is_empty()
        && h.len() <= 253
        && h != "localhost"
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    ok.then_some(h)
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| file_err(dir, format!("cannot create the directory: {e}")))
}

/// Writes a file atomically (temporary file, fsync, rename, fsync of the directory).
fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let werr = |e: std::io::Error| file_err(path, format!("cannot write: {e}"));
    {
        let mut f = o.open(&tmp).map_err(werr)?;
        f.write_all(bytes).map_err(werr)?;
        f.sync_all().map_err(werr)?;
    }
    std::fs::rename(&tmp, path).map_err(werr)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// A rustls server configuration (HTTP/2 and HTTP/1.1 by ALPN).
pub fn server_config(m: &Material) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(m.chain.clone(), m.key.clone_key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_self_signed_certificate_is_made_once_and_its_key_is_private() {
        let d = tempfile::tempdir().unwrap();
        let a = self_signed(d.path()).unwrap();
        assert!(a.generated);
        assert!(a.fingerprint.starts_with("sha256:") && a.fingerprint.len() == 7 + 64);
        let b = self_signed(d.path()).unwrap();
        assert!(!b.generated);
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(
            existing_self_signed(d.path()).unwrap().as_deref(),
            Some(a.fingerprint.as_str())
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        server_config(&b).unwrap();
    }

    #[test]
    fn a_certificate_without_its_key_is_not_replaced() {
        let d = tempfile::tempdir().unwrap();
        self_signed(d.path()).unwrap();
        std::fs::remove_file(d.path().join(KEY_FILE)).unwrap();
        let e = self_signed(d.path()).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
    }

    #[test]
    fn unreadable_files_are_named() {
        let d = tempfile::tempdir().unwrap();
        let cert = d.path().join("c.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        let e = load(&cert, &d.path().join("k.pem"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.pem"), "{e}");
    }
}
