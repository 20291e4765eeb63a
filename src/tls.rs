//! TLS for the stream and the targets: rustls on ring, the bundled webpki roots, and the
//! private CAs the config adds.
//!
//! - The bundled roots come with the binary, so it runs in a minimal container with no
//!   system trust store.
//! - `[tls] ca_file`, `SSL_CERT_FILE` and a target's own `tls.ca_file` add certificates to
//!   those roots; they never replace them, so an internal CA does not cut the relay off
//!   from Slack or Discord. The config reads and checks the files ([`CaFile`]); this module
//!   only turns them into a `ClientConfig`, once at start-up.
//! - There is no way to turn verification off.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;

/// One PEM bundle of CA certificates, read and checked when the config was loaded.
#[derive(Clone, PartialEq, Eq)]
pub struct CaFile {
    /// Where the setting came from (`tls.ca_file`, `SSL_CERT_FILE`,
    /// `targets.NAME.tls.ca_file`), for `check` and for messages.
    pub origin: String,
    /// The file, as written, for `check` and for messages.
    pub path: PathBuf,
    /// Its usable certificates, in file order (at least one).
    pub certs: Vec<CertificateDer<'static>>,
    /// Certificates in the file that cannot be a root (an odd one in a system bundle
    /// should not stop the relay); `check` shows the count.
    pub skipped: usize,
}

impl std::fmt::Debug for CaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaFile")
            .field("origin", &self.origin)
            .field("path", &self.path)
            .field("certs", &self.certs.len())
            .field("skipped", &self.skipped)
            .finish()
    }
}

/// Why a PEM bundle cannot serve as trust anchors. Names nothing but the problem: the
/// caller adds the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("cannot read it: {0}")]
    Read(#[source] std::io::Error),
    #[error("it is not a PEM file of certificates ({0})")]
    NotPem(String),
    #[error("it holds no certificate (expected `-----BEGIN CERTIFICATE-----` blocks)")]
    Empty,
    #[error("none of its {0} certificate(s) is a valid CA certificate")]
    NoValidCertificate(usize),
}

/// Reads the PEM bundle at `path`: its usable certificates and how many were not.
pub fn read_ca_file(
    path: &std::path::Path,
) -> Result<(Vec<CertificateDer<'static>>, usize), CaFileError> {
    use rustls::pki_types::pem::PemObject as _;
    let bytes = std::fs::read(path).map_err(CaFileError::Read)?;
    let all = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CaFileError::NotPem(e.to_string()))?;
    if all.is_empty() {
        return Err(CaFileError::Empty);
    }
    let total = all.len();
    let usable: Vec<_> = all
        .into_iter()
        .filter(|cert| rustls::RootCertStore::empty().add(cert.clone()).is_ok())
        .collect();
    if usable.is_empty() {
        return Err(CaFileError::NoValidCertificate(total));
    }
    let skipped = total - usable.len();
    Ok((usable, skipped))
}

/// The bundled roots plus every certificate of `extra`.
fn roots(extra: &[CaFile]) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // The config kept only certificates this same check accepts.
    let (_added, _ignored) =
        roots.add_parsable_certificates(extra.iter().flat_map(|f| f.certs.iter().cloned()));
    roots
}

fn client_config(extra: &[CaFile], alpn: &[&[u8]]) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports rustls' default protocol versions")
        .with_root_certificates(roots(extra))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// For the WebSocket stream: no ALPN (a WebSocket upgrade is HTTP/1.1).
pub fn stream_config(extra: &[CaFile]) -> Arc<rustls::ClientConfig> {
    Arc::new(client_config(extra, &[]))
}

/// For a target's reqwest client (`use_preconfigured_tls`): ALPN offers HTTP/2 and
/// HTTP/1.1, as reqwest's own rustls set-up does.
pub fn http_config(extra: &[CaFile]) -> rustls::ClientConfig {
    client_config(extra, &[b"h2", b"http/1.1"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_certificate_bundle_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(matches!(read_ca_file(&missing), Err(CaFileError::Read(_))));

        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "just some text\n").unwrap();
        assert!(matches!(read_ca_file(&text), Err(CaFileError::Empty)));

        let garbage = dir.path().join("bad.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(matches!(
            read_ca_file(&garbage),
            Err(CaFileError::NoValidCertificate(1))
        ));
    }

    #[test]
    fn extra_certificates_are_added_to_the_bundled_roots() {
        let bundled = roots(&[]).len();
        assert!(bundled > 100, "the webpki roots are bundled ({bundled})");
        assert_eq!(http_config(&[]).alpn_protocols.len(), 2);
        assert!(stream_config(&[]).alpn_protocols.is_empty());
    }
}
