//! A private certificate authority made in the test, and a TLS front that serves its
//! certificate in front of a plaintext harness server (the stream, a receiver).
//!
//! The front terminates TLS with tokio-rustls and copies bytes both ways to its backend,
//! so every existing recorder keeps working behind it. It records how many handshakes
//! succeeded and why the others failed (a client that does not trust the CA aborts with
//! an alert, which shows up here as the handshake error).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::wait::Changes;

/// The names every leaf certificate of [`TestCa`] is valid for.
pub const SERVER_NAMES: &[&str] = &["127.0.0.1", "localhost", "stream.test", "hook.test"];

/// A CA certificate and key, made fresh for each test.
pub struct TestCa {
    /// The CA certificate, PEM: what a `ca_file` holds.
    pub pem: String,
    /// Its parameters and key, to sign server certificates with.
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        // A name of its own: two test CAs with one name would look like one CA with
        // two keys (a bad signature) instead of an unknown issuer.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "badger-relay test CA {} #{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa {
            pem,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// Writes the CA certificate to `dir/name`, for a `ca_file` or `SSL_CERT_FILE`.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.pem).unwrap();
        path
    }

    /// A server config with a fresh leaf certificate for [`SERVER_NAMES`], signed by this CA.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let names: Vec<String> = SERVER_NAMES.iter().map(|s| s.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "badger-relay test server");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let chain = vec![CertificateDer::from(cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        Arc::new(config)
    }
}

struct State {
    /// Handshakes that completed.
    accepted: AtomicUsize,
    /// Why the failed ones failed, in order.
    failures: Mutex<Vec<String>>,
    /// Bumped on every handshake, for waits.
    changes: Changes,
}

/// TLS on 127.0.0.1 in front of a plaintext `backend`. Dropping it stops it.
pub struct TlsFront {
    /// Where it listens: the port goes in `wss://` and `https://` URLs.
    addr: SocketAddr,
    /// What it recorded, shared with its tasks.
    state: Arc<State>,
    /// The accept loop, aborted on drop.
    task: JoinHandle<()>,
}

impl TlsFront {
    pub async fn start(ca: &TestCa, backend: SocketAddr) -> TlsFront {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(ca.server_config());
        let state = Arc::new(State {
            accepted: AtomicUsize::new(0),
            failures: Mutex::default(),
            changes: Changes::default(),
        });
        let s = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, s) = (acceptor.clone(), s.clone());
                tokio::spawn(async move {
                    match acceptor.accept(tcp).await {
                        Ok(mut tls) => {
                            s.accepted.fetch_add(1, Ordering::SeqCst);
                            s.changes.bump();
                            if let Ok(mut plain) = TcpStream::connect(backend).await {
                                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                            }
                        }
                        Err(e) => {
                            s.failures.lock().unwrap().push(e.to_string());
                            s.changes.bump();
                        }
                    }
                });
            }
        });
        TlsFront { addr, state, task }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn changes(&self) -> &Changes {
        &self.state.changes
    }

    /// TLS handshakes that completed.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Why each failed handshake failed.
    pub fn failures(&self) -> Vec<String> {
        self.state.failures.lock().unwrap().clone()
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}
