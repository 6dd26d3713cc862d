//! A raw PostgreSQL start-up client: client libraries hide which
//! authentication request the server sends, and an attacker does not use
//! one. Speaks just enough of the protocol to send a StartupMessage (with
//! any parameters), SSLRequest and TLS, a password, and the two SCRAM client
//! messages, and to read the server's answers.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the server answered, as far as these tests care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    AuthOk,
    Cleartext,
    /// SASL, with the mechanisms offered.
    Sasl(Vec<String>),
    SaslContinue(String),
    SaslFinal(String),
    /// SQLSTATE and message.
    Error(String, String),
    ReadyForQuery,
    DataRow,
    /// Any other message type (ParameterStatus, BackendKeyData, rows ...).
    Other(u8),
    /// The server closed the connection.
    Closed,
}

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub struct RawConn {
    stream: Box<dyn Stream>,
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

impl RawConn {
    /// A plaintext connection.
    pub async fn plain(addr: SocketAddr) -> Self {
        Self {
            stream: Box::new(TcpStream::connect(addr).await.expect("connect")),
        }
    }

    /// SSLRequest, then TLS trusting `ca_pem` for `localhost`.
    pub async fn tls(addr: SocketAddr, ca_pem: &str) -> Self {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
            .await
            .unwrap();
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer[0], b'S', "the server must accept SSLRequest");
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await.expect("TLS handshake");
        Self {
            stream: Box::new(tls),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        // A closed connection shows up on the next read.
        let _ = self.stream.write_all(bytes).await;
        let _ = self.stream.flush().await;
    }

    /// A StartupMessage (protocol 3.0) with these parameters.
    pub async fn startup(&mut self, params: &[(&str, &str)]) {
        let mut body = vec![0, 3, 0, 0];
        for (k, v) in params {
            cstr(&mut body, k);
            cstr(&mut body, v);
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        msg.extend(body);
        self.send(&msg).await;
    }

    async fn password_family(&mut self, body: Vec<u8>) {
        let mut msg = vec![b'p'];
        msg.extend(((body.len() + 4) as u32).to_be_bytes());
        msg.extend(body);
        self.send(&msg).await;
    }

    /// A PasswordMessage (cleartext).
    pub async fn password(&mut self, password: &str) {
        let mut body = Vec::new();
        cstr(&mut body, password);
        self.password_family(body).await;
    }

    /// SASLInitialResponse with a SCRAM client-first message; returns the
    /// client nonce.
    pub async fn scram_first(&mut self) -> String {
        let nonce = base64::engine::general_purpose::STANDARD.encode(rand_bytes());
        let first = format!("n,,n=,r={nonce}");
        let mut body = Vec::new();
        cstr(&mut body, "SCRAM-SHA-256");
        body.extend((first.len() as i32).to_be_bytes());
        body.extend(first.as_bytes());
        self.password_family(body).await;
        nonce
    }

    /// SASLResponse with a client-final message whose proof is made up (a
    /// wrong password, as far as the server can tell).
    pub async fn scram_final(&mut self, server_first: &str) {
        let nonce = field(server_first, 'r').expect("server nonce");
        let proof = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let last = format!("c=biws,r={nonce},p={proof}");
        self.password_family(last.into_bytes()).await;
    }

    /// A simple Query message.
    pub async fn query(&mut self, sql: &str) {
        let mut body = Vec::new();
        cstr(&mut body, sql);
        let mut msg = vec![b'Q'];
        msg.extend(((body.len() + 4) as u32).to_be_bytes());
        msg.extend(body);
        self.send(&msg).await;
    }

    /// The next message from the server.
    pub async fn read(&mut self) -> Reply {
        let mut head = [0u8; 5];
        if self.stream.read_exact(&mut head).await.is_err() {
            return Reply::Closed;
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        if self.stream.read_exact(&mut body).await.is_err() {
            return Reply::Closed;
        }
        match head[0] {
            b'R' => {
                let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let rest = &body[4..];
                let text = || String::from_utf8_lossy(rest).into_owned();
                match code {
                    0 => Reply::AuthOk,
                    3 => Reply::Cleartext,
                    10 => Reply::Sasl(
                        rest.split(|b| *b == 0)
                            .filter(|m| !m.is_empty())
                            .map(|m| String::from_utf8_lossy(m).into_owned())
                            .collect(),
                    ),
                    11 => Reply::SaslContinue(text()),
                    12 => Reply::SaslFinal(text()),
                    other => panic!("unexpected authentication request {other}"),
                }
            }
            b'E' => {
                let (mut code, mut message) = (String::new(), String::new());
                for part in body.split(|b| *b == 0).filter(|p| !p.is_empty()) {
                    let value = String::from_utf8_lossy(&part[1..]).into_owned();
                    match part[0] {
                        b'C' => code = value,
                        b'M' => message = value,
                        _ => {}
                    }
                }
                Reply::Error(code, message)
            }
            b'Z' => Reply::ReadyForQuery,
            b'D' => Reply::DataRow,
            other => Reply::Other(other),
        }
    }

    /// Read until an error, ReadyForQuery or the end, skipping the rest.
    pub async fn read_outcome(&mut self) -> Reply {
        loop {
            match self.read().await {
                Reply::Other(_) | Reply::AuthOk | Reply::SaslFinal(_) => continue,
                outcome => return outcome,
            }
        }
    }
}

/// `key=value` from a SCRAM message.
pub fn field(message: &str, key: char) -> Option<String> {
    message
        .split(',')
        .find_map(|part| part.strip_prefix(&format!("{key}=")).map(str::to_owned))
}

fn rand_bytes() -> [u8; 18] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut out = [0u8; 18];
    out[..16].copy_from_slice(&nanos.to_be_bytes());
    out
}
