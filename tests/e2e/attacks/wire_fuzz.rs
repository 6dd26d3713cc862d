//! Fuzzing the PostgreSQL wire decoding (item 7): raw TCP connections to a
//! running gateway send random and mutated start-up packets, SSL and
//! cancel requests, truncated and oversized length prefixes, and — after a
//! valid start-up and sign-in — random frontend messages. Whatever arrives,
//! the server must answer with an error or close the connection (never hang
//! on it or crash), and after every batch a fresh connection still works.
//!
//! Cases come from a seeded PRNG, so a failure reproduces; the case's bytes
//! are in the panic message. The number of cases keeps the test to a few
//! seconds.

use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

const PROTOCOL_3: u32 = 196_608;
const SSL_REQUEST: u32 = 80_877_103;
const CANCEL_REQUEST: u32 = 80_877_102;
const GSSENC_REQUEST: u32 = 80_877_104;

/// How long the server may take to close a connection whose client has
/// finished sending. A liveness guard, not a measurement: a healthy server
/// closes within milliseconds.
const CLOSE_GUARD: Duration = Duration::from_secs(30);

/// Connections run at once within a batch.
const PARALLEL: usize = 16;

/// A start-up packet: length, protocol code, body.
fn packet(code: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A frontend message: type, length, body.
pub(super) fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(kind);
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

pub(super) fn cstr(text: &str) -> Vec<u8> {
    let mut out = text.as_bytes().to_vec();
    out.push(0);
    out
}

fn startup_body(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (key, value) in params {
        body.extend(cstr(key));
        body.extend(cstr(value));
    }
    body.push(0);
    body
}

fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let len = rng.random_range(0..=max);
    (0..len).map(|_| rng.random()).collect()
}

/// A length prefix that lies: negative, tiny, huge, or off by a little.
fn bad_length(rng: &mut StdRng, honest: usize) -> u32 {
    match rng.random_range(0..6) {
        0 => u32::MAX,               // -1
        1 => 0x8000_0000,            // i32::MIN
        2 => rng.random_range(0..8), // shorter than the header
        3 => 0x7fff_ffff,            // 2 GiB
        4 => 0x3fff_ffff,            // just under pgwire's 1 GiB limit
        _ => (honest as u32).wrapping_add(rng.random_range(1..64)),
    }
}

/// One random thing to send before any start-up.
fn random_prelude(rng: &mut StdRng) -> Vec<u8> {
    match rng.random_range(0..9) {
        // Pure noise.
        0 => random_bytes(rng, 64),
        // A start-up packet with random parameters.
        1 => {
            let mut body = Vec::new();
            for _ in 0..rng.random_range(0..5) {
                body.extend(random_bytes(rng, 12));
                body.push(0);
            }
            if rng.random_bool(0.5) {
                body.push(0);
            }
            packet(PROTOCOL_3, &body)
        }
        // A start-up packet with another protocol code.
        2 => {
            let code = match rng.random_range(0..4) {
                0 => 0x0002_0000, // protocol 2.0
                1 => 0x0003_0002, // 3.2
                2 => GSSENC_REQUEST,
                _ => rng.random(),
            };
            packet(code, &startup_body(&[("user", "analyst")]))
        }
        // An honest start-up whose length prefix lies.
        3 => {
            let mut bytes = packet(PROTOCOL_3, &startup_body(&[("user", "analyst")]));
            let len = bad_length(rng, bytes.len());
            bytes[..4].copy_from_slice(&len.to_be_bytes());
            bytes
        }
        // An SSL request followed by garbage or a start-up.
        4 => {
            let mut bytes = packet(SSL_REQUEST, &[]);
            if rng.random_bool(0.5) {
                bytes.extend(random_bytes(rng, 48));
            } else {
                bytes.extend(packet(PROTOCOL_3, &startup_body(&[("user", "intruder")])));
            }
            bytes
        }
        // A cancel request with a random key.
        5 => {
            let mut body = rng.random::<u32>().to_be_bytes().to_vec();
            body.extend(random_bytes(rng, 260)); // keys may be 4..256 bytes
            packet(CANCEL_REQUEST, &body)
        }
        // A truncated cancel request or start-up.
        6 => {
            let mut bytes = if rng.random_bool(0.5) {
                packet(CANCEL_REQUEST, &[0, 0, 0, 1, 0, 0, 0, 2])
            } else {
                packet(
                    PROTOCOL_3,
                    &startup_body(&[("user", "analyst"), ("database", "members")]),
                )
            };
            let keep = rng.random_range(0..bytes.len());
            bytes.truncate(keep);
            bytes
        }
        // A start-up with a huge parameter, over the start-up limit.
        7 => packet(
            PROTOCOL_3,
            &startup_body(&[("user", &"u".repeat(rng.random_range(9_000..20_000)))]),
        ),
        // A start-up packet, one byte flipped.
        _ => {
            let mut bytes = packet(
                PROTOCOL_3,
                &startup_body(&[("user", "analyst"), ("database", "members")]),
            );
            let at = rng.random_range(0..bytes.len());
            bytes[at] ^= 1 << rng.random_range(0..8);
            bytes
        }
    }
}

/// A well-formed frontend message of a random kind, then maybe corrupted.
fn random_frontend_message(rng: &mut StdRng) -> Vec<u8> {
    // Cheap statements: the point is the framing around them, and the
    // gateway runs in this test's runtime.
    let sql = ["SELECT 1", "SELECT $1", "", "BEGIN", "SELECT x"][rng.random_range(0..5)];
    let (kind, mut body) = match rng.random_range(0..14) {
        0 => (b'Q', cstr(sql)),
        1 => {
            let mut body = cstr("s1");
            body.extend(cstr(sql));
            let types: u16 = rng.random_range(0..3);
            body.extend(types.to_be_bytes());
            for _ in 0..types {
                body.extend(rng.random::<u32>().to_be_bytes());
            }
            (b'P', body)
        }
        2 => {
            let mut body = cstr("");
            body.extend(cstr(if rng.random_bool(0.5) { "s1" } else { "" }));
            body.extend(1u16.to_be_bytes());
            body.extend(rng.random_range(0u16..3).to_be_bytes());
            body.extend(1u16.to_be_bytes());
            let value = random_bytes(rng, 8);
            body.extend((value.len() as u32).to_be_bytes());
            body.extend(value);
            body.extend(0u16.to_be_bytes());
            (b'B', body)
        }
        3 => {
            let mut body = vec![if rng.random_bool(0.5) { b'S' } else { b'P' }];
            body.extend(cstr(""));
            (b'D', body)
        }
        4 => {
            let mut body = cstr("");
            body.extend(rng.random::<u32>().to_be_bytes());
            (b'E', body)
        }
        5 => (b'S', vec![]),
        6 => (b'H', vec![]),
        7 => {
            let mut body = vec![b'S'];
            body.extend(cstr("s1"));
            (b'C', body)
        }
        8 => (b'd', random_bytes(rng, 32)),
        9 => (b'c', vec![]),
        10 => (b'f', cstr("stop")),
        11 => (b'p', cstr("analyst-guess")),
        12 => (b'F', random_bytes(rng, 24)),
        _ => (rng.random(), random_bytes(rng, 32)),
    };
    // Corrupt about half of them: counts that promise more than follows,
    // a lying length prefix, a missing terminator, random noise.
    match rng.random_range(0..8) {
        0 if body.len() >= 2 => {
            let at = rng.random_range(0..body.len() - 1);
            body[at] = 0xff;
            body[at + 1] = 0xff;
            message(kind, &body)
        }
        1 => {
            let mut bytes = message(kind, &body);
            let len = bad_length(rng, bytes.len() - 1);
            bytes[1..5].copy_from_slice(&len.to_be_bytes());
            bytes
        }
        2 if !body.is_empty() => {
            body.pop();
            message(kind, &body)
        }
        3 => {
            body.extend(random_bytes(rng, 16));
            message(kind, &body)
        }
        _ => message(kind, &body),
    }
}

/// Send `bytes`, finish sending, and read until the server closes. Returns
/// what the server answered. Panics if it keeps the connection open.
async fn exchange(addr: SocketAddr, signed_in: bool, bytes: Vec<u8>, case: String) -> Vec<u8> {
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    if signed_in {
        sign_in(&mut socket).await;
    }
    // The server may refuse and close before everything is written.
    let _ = socket.write_all(&bytes).await;
    let _ = socket.shutdown().await;
    let mut answer = Vec::new();
    match tokio::time::timeout(CLOSE_GUARD, socket.read_to_end(&mut answer)).await {
        Ok(_) => answer, // closed, cleanly or by reset
        Err(_) => panic!(
            "the server kept the connection open after {case}: sent {:?}, answered {:?}",
            &bytes[..bytes.len().min(200)],
            &answer[..answer.len().min(200)]
        ),
    }
}

/// Start up as `analyst`, sign in with SCRAM-SHA-256 (or a cleartext
/// password, if that is what the server asks for), and return once the
/// server is ready for queries.
pub(super) async fn sign_in(socket: &mut TcpStream) {
    let startup = packet(
        PROTOCOL_3,
        &startup_body(&[("user", "analyst"), ("database", "members")]),
    );
    socket.write_all(&startup).await.unwrap();
    let mut scram = None;
    loop {
        let mut header = [0u8; 5];
        socket
            .read_exact(&mut header)
            .await
            .expect("a message from the server");
        let len = u32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
        let mut body = vec![0u8; len - 4];
        socket.read_exact(&mut body).await.unwrap();
        let auth = body
            .get(..4)
            .map(|b| u32::from_be_bytes(b.try_into().unwrap()));
        match (header[0], auth) {
            (b'R', Some(0)) => {}
            (b'R', Some(3)) => {
                let password = cstr(&password("analyst"));
                socket.write_all(&message(b'p', &password)).await.unwrap();
            }
            (b'R', Some(10)) => {
                let client = Scram::new();
                let first = client.first_message();
                let mut response = cstr("SCRAM-SHA-256");
                response.extend((first.len() as u32).to_be_bytes());
                response.extend(first.as_bytes());
                socket.write_all(&message(b'p', &response)).await.unwrap();
                scram = Some(client);
            }
            (b'R', Some(11)) => {
                let server_first = String::from_utf8(body[4..].to_vec()).unwrap();
                let client = scram.as_ref().expect("SASL started");
                let last = client.final_message(&server_first, &password("analyst"));
                socket
                    .write_all(&message(b'p', last.as_bytes()))
                    .await
                    .unwrap();
            }
            (b'R', Some(12)) => {}
            (b'R', other) => panic!("unexpected authentication request {other:?}"),
            (b'E', _) => panic!("sign-in failed: {}", String::from_utf8_lossy(&body)),
            (b'Z', _) => return,
            _ => {}
        }
    }
}

/// A fresh connection signs in and answers `SELECT 1` (spoken raw, so the
/// check costs one round of sign-in, not a client library's).
pub(super) async fn assert_fresh_connection_works(addr: SocketAddr) {
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    sign_in(&mut socket).await;
    socket
        .write_all(&message(b'Q', &cstr("SELECT 1")))
        .await
        .unwrap();
    let mut rows = Vec::new();
    loop {
        let mut header = [0u8; 5];
        socket.read_exact(&mut header).await.expect("an answer");
        let len = u32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
        let mut body = vec![0u8; len - 4];
        socket.read_exact(&mut body).await.unwrap();
        match header[0] {
            b'D' => rows.push(body),
            b'E' => panic!("SELECT 1 failed: {}", String::from_utf8_lossy(&body)),
            b'Z' => break,
            _ => {}
        }
    }
    // One row, one column (count 1), 1 byte long, "1".
    assert_eq!(rows, vec![vec![0, 1, 0, 0, 0, 1, b'1']]);
}

/// The client side of SCRAM-SHA-256 without channel binding (RFC 5802).
struct Scram {
    nonce: String,
}

impl Scram {
    fn new() -> Self {
        use base64::Engine as _;
        let bytes: [u8; 18] = rand::random();
        Self {
            nonce: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    fn first_bare(&self) -> String {
        format!("n=,r={}", self.nonce)
    }

    fn first_message(&self) -> String {
        format!("n,,{}", self.first_bare())
    }

    fn final_message(&self, server_first: &str, password: &str) -> String {
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine as _;
        use hmac::{Hmac, Mac};
        use sha2::{Digest, Sha256};
        let field = |name: &str| {
            server_first
                .split(',')
                .find_map(|f| f.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {server_first}"))
                .to_owned()
        };
        let (nonce, salt, iterations) = (field("r="), field("s="), field("i="));
        assert!(
            nonce.starts_with(&self.nonce),
            "the server changed our nonce"
        );
        let salt = STANDARD.decode(salt).unwrap();
        let iterations: u32 = iterations.parse().unwrap();
        let hmac = |key: &[u8], data: &[u8]| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        };
        // PBKDF2-HMAC-SHA-256, one block; slow in a debug build, and the
        // same for every sign-in of the user, so computed once.
        /// (salt, iterations, salted password) of the last sign-in.
        type Salted = (Vec<u8>, u32, Vec<u8>);
        static SALTED: std::sync::Mutex<Option<Salted>> = std::sync::Mutex::new(None);
        let mut cached = SALTED.lock().unwrap();
        let salted = match cached.as_ref() {
            Some((s, i, salted)) if *s == salt && *i == iterations => salted.clone(),
            _ => {
                let mut block = salt.clone();
                block.extend(1u32.to_be_bytes());
                let mut u = hmac(password.as_bytes(), &block);
                let mut salted = u.clone();
                for _ in 1..iterations {
                    u = hmac(password.as_bytes(), &u);
                    salted.iter_mut().zip(&u).for_each(|(s, x)| *s ^= x);
                }
                *cached = Some((salt.clone(), iterations, salted.clone()));
                salted
            }
        };
        drop(cached);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare());
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        format!("{without_proof},p={}", STANDARD.encode(proof))
    }
}

/// The types of the backend messages `answer` is made of, or `None` if it
/// is not a sequence of well-framed messages. An SSL answer (`N`/`S`, one
/// byte) may come first.
fn frame_types(answer: &[u8]) -> Option<Vec<u8>> {
    fn frames(mut rest: &[u8]) -> Option<Vec<u8>> {
        let mut types = Vec::new();
        while !rest.is_empty() {
            if rest.len() < 5 {
                return None;
            }
            let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
            if len < 4 || rest.len() < len + 1 {
                return None;
            }
            types.push(rest[0]);
            rest = &rest[len + 1..];
        }
        Some(types)
    }
    frames(answer).or_else(|| match answer.first() {
        Some(b'N' | b'S') => frames(&answer[1..]).map(|mut t| {
            t.insert(0, answer[0]);
            t
        }),
        _ => None,
    })
}

fn well_framed(answer: &[u8]) -> bool {
    frame_types(answer).is_some()
}

/// Closed without a word, or told why with an ErrorResponse.
fn error_or_silence(answer: &[u8]) -> bool {
    frame_types(answer).is_some_and(|types| types.is_empty() || types.contains(&b'E'))
}

/// Run `cases` connections, `PARALLEL` at a time; return the answers.
async fn run_batch(
    addr: SocketAddr,
    signed_in: bool,
    cases: Vec<(String, Vec<u8>)>,
) -> Vec<Vec<u8>> {
    let mut answers = Vec::new();
    for chunk in cases.chunks(PARALLEL) {
        let tasks: Vec<_> = chunk
            .iter()
            .cloned()
            .map(|(case, bytes)| tokio::spawn(exchange(addr, signed_in, bytes, case)))
            .collect();
        for task in tasks {
            answers.push(task.await.expect("a fuzz connection panicked"));
        }
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgwire_decoding_survives_random_startup_and_frontend_messages() {
    let mesh = attack_mesh().await;
    let addr = mesh.mesh.pgwire_addr();
    let mut rng = StdRng::seed_from_u64(0x0057_A27C);

    // Before start-up: random, mutated, truncated and oversized packets.
    for batch in 0..2 {
        let cases: Vec<(String, Vec<u8>)> = (0..96)
            .map(|i| {
                (
                    format!("prelude case {batch}.{i}"),
                    random_prelude(&mut rng),
                )
            })
            .collect();
        let answers = run_batch(addr, false, cases.clone()).await;
        for ((case, _), answer) in cases.iter().zip(&answers) {
            assert!(well_framed(answer), "{case}: garbled answer {answer:?}");
        }
        assert_fresh_connection_works(addr).await;
    }

    // Hand-made cases with a known answer: each gets an error or is closed
    // without one, and never anything else.
    let crafted = vec![
        (
            "oversized length prefix".to_owned(),
            0x7fff_ffffu32.to_be_bytes().to_vec(),
        ),
        (
            "negative length prefix".to_owned(),
            u32::MAX.to_be_bytes().to_vec(),
        ),
        (
            "unsupported protocol".to_owned(),
            packet(0x0002_0000, &startup_body(&[("user", "analyst")])),
        ),
        (
            "start-up without a user".to_owned(),
            packet(PROTOCOL_3, &startup_body(&[("database", "members")])),
        ),
        (
            "start-up over the size limit".to_owned(),
            packet(PROTOCOL_3, &startup_body(&[("user", &"u".repeat(20_000))])),
        ),
        (
            "truncated cancel".to_owned(),
            packet(CANCEL_REQUEST, &[0, 0]),
        ),
    ];
    let answers = run_batch(addr, false, crafted.clone()).await;
    for ((case, _), answer) in crafted.iter().zip(&answers) {
        assert!(
            error_or_silence(answer),
            "{case}: neither an error nor a silent close: {answer:?}"
        );
    }
    assert_fresh_connection_works(addr).await;

    // After a valid start-up and sign-in: sequences of random messages.
    for batch in 0..2 {
        let cases: Vec<(String, Vec<u8>)> = (0..16)
            .map(|i| {
                let bytes: Vec<u8> = (0..rng.random_range(1..10))
                    .flat_map(|_| random_frontend_message(&mut rng))
                    .collect();
                (format!("frontend case {batch}.{i}"), bytes)
            })
            .collect();
        let answers = run_batch(addr, true, cases.clone()).await;
        for ((case, _), answer) in cases.iter().zip(&answers) {
            assert!(well_framed(answer), "{case}: garbled answer {answer:?}");
        }
        assert_fresh_connection_works(addr).await;
    }

    // A signed-in client that declares a 2 GiB message is cut off (or left
    // to finish it) without the server reserving the memory.
    let answers = run_batch(
        addr,
        true,
        vec![("2 GiB query".to_owned(), {
            let mut bytes = vec![b'Q'];
            bytes.extend(0x7fff_fff0u32.to_be_bytes());
            bytes.extend(b"SELECT ");
            bytes
        })],
    )
    .await;
    assert!(error_or_silence(&answers[0]), "{:?}", answers[0]);
    mesh.assert_serving().await;
}
