//! Feed servers for import tests: a feed behind an http:// or an https:// URL (with a CA and a
//! server certificate made in the test), a redirect that never ends, and an address nobody
//! listens on.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A certificate authority of the test's own: trusted by nothing unless its PEM file is given.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        Self {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    /// The CA certificate as a PEM file (what `ESHOP_FEED_CA_FILE` names), removed on drop.
    pub fn pem_file(&self) -> PemFile {
        let path = std::env::temp_dir().join(format!("eshop-ca-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&path, self.issuer.pem()).expect("CA file written");
        PemFile(path)
    }

    /// A certificate for 127.0.0.1 and localhost that this CA signed.
    pub fn server_tls(&self) -> TlsAcceptor {
        let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
            .expect("server parameters");
        let key = KeyPair::generate().expect("server key");
        let certificate = params.signed_by(&key, &self.issuer).expect("signed");
        let chain = vec![
            certificate.der().clone(),
            CertificateDer::clone(self.issuer.der()),
        ];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate");
        TlsAcceptor::from(Arc::new(config))
    }
}

pub struct PemFile(PathBuf);

impl PemFile {
    pub fn path(&self) -> &PathBuf {
        &self.0
    }

    pub fn display(&self) -> String {
        self.0.to_string_lossy().to_string()
    }
}

impl Drop for PemFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Reads the request (a GET has no body) and writes the whole answer.
async fn answer(mut stream: impl AsyncRead + AsyncWrite + Unpin, response: &str) {
    let mut request = [0_u8; 4096];
    let _ = stream.read(&mut request).await;
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Serves `body` to every request on a port of its own: a feed behind an http:// URL.
pub async fn serve_feed(body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("address");
    let response = ok(&body);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            answer(socket, &response).await;
        }
    });
    format!("http://{addr}/calendar.json")
}

/// Serves `body` over TLS with the certificate `tls` presents: a feed behind an https:// URL.
/// A client that refuses the certificate ends the handshake, and the server waits for the next.
pub async fn serve_feed_over_tls(body: String, tls: TlsAcceptor) -> String {
    serve_over_tls(tls, move |_| ok(&body)).await
}

/// Answers every request with a redirect to the next path, for ever.
pub async fn serve_endless_redirects_over_tls(tls: TlsAcceptor) -> String {
    serve_over_tls(tls, |addr| {
        format!(
            "HTTP/1.1 302 Found\r\nlocation: https://{addr}/calendar-{}.json\r\n\
             content-length: 0\r\nconnection: close\r\n\r\n",
            uuid::Uuid::new_v4().simple()
        )
    })
    .await
}

async fn serve_over_tls(
    tls: TlsAcceptor,
    response: impl Fn(std::net::SocketAddr) -> String + Send + 'static,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            if let Ok(stream) = tls.accept(socket).await {
                answer(stream, &response(addr)).await;
            }
        }
    });
    format!("https://{addr}/calendar.json")
}

/// An https:// URL on a port nobody listens on (it was free a moment ago).
pub async fn nobody_listening() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    format!("https://{addr}/calendar.json")
}

/// An https:// URL whose server takes the connection and then says nothing.
pub async fn serve_silence() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("https://{addr}/calendar.json")
}
