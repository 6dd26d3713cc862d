//! The extended query protocol spoken raw: what a client that drives
//! Bind/Flush/Sync itself is answered, message by message.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::attack_mesh;
use super::wire_fuzz::{assert_fresh_connection_works, cstr, message, sign_in};

/// The types of the messages read until one of type `last`, with the
/// ErrorResponse texts; panics when none comes within a few seconds.
async fn read_until(socket: &mut TcpStream, last: u8) -> (Vec<u8>, String) {
    let read = async {
        let (mut types, mut errors) = (Vec::new(), String::new());
        loop {
            let mut header = [0u8; 5];
            socket.read_exact(&mut header).await.expect("an answer");
            let len = u32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
            let mut body = vec![0u8; len - 4];
            socket.read_exact(&mut body).await.unwrap();
            types.push(header[0]);
            if header[0] == b'E' {
                errors.push_str(&String::from_utf8_lossy(&body));
            }
            if header[0] == last {
                return (types, errors);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap_or_else(|_| panic!("no message {:?} arrived", last as char))
}

#[tokio::test]
async fn bind_complete_waits_for_flush_or_sync_and_a_bad_bind_is_08p01() {
    let mesh = attack_mesh().await;
    let mut socket = TcpStream::connect(mesh.mesh.pgwire_addr()).await.unwrap();
    sign_in(&mut socket).await;
    let parse = [cstr(""), cstr("SELECT 1"), vec![0, 0]].concat();
    let bind = [cstr(""), cstr(""), vec![0, 0, 0, 0, 0, 0]].concat();
    let execute = [cstr(""), vec![0, 0, 0, 0]].concat();
    // A client that flushes and waits for BindComplete gets it.
    let ask = [
        message(b'P', &parse),
        message(b'B', &bind),
        message(b'H', &[]),
    ]
    .concat();
    socket.write_all(&ask).await.unwrap();
    assert_eq!(read_until(&mut socket, b'2').await.0, b"12");
    let run = [message(b'E', &execute), message(b'S', &[])].concat();
    socket.write_all(&run).await.unwrap();
    assert_eq!(read_until(&mut socket, b'Z').await.0, b"DCZ");
    // Parameters for the empty statement: an error, then ready again.
    let empty = [cstr(""), cstr(""), vec![0, 0]].concat();
    let bad_bind = [cstr(""), cstr(""), vec![0, 0, 0, 1, 0, 0, 0, 1, b'7', 0, 0]].concat();
    let ask = [
        message(b'P', &empty),
        message(b'B', &bad_bind),
        message(b'S', &[]),
    ]
    .concat();
    socket.write_all(&ask).await.unwrap();
    let (types, errors) = read_until(&mut socket, b'Z').await;
    assert_eq!(types, b"1EZ", "{errors}");
    assert!(errors.contains("08P01"), "{errors}");
    assert_fresh_connection_works(mesh.mesh.pgwire_addr()).await;
}

#[tokio::test]
async fn parse_describe_and_close_replies_wait_for_flush_or_sync() {
    let mesh = attack_mesh().await;
    let mut socket = TcpStream::connect(mesh.mesh.pgwire_addr()).await.unwrap();
    sign_in(&mut socket).await;
    let parse = [cstr("s1"), cstr("SELECT $1::int AS n"), vec![0, 0]].concat();
    let describe = [vec![b'S'], cstr("s1")].concat();
    let ask = [message(b'P', &parse), message(b'D', &describe)].concat();
    socket.write_all(&ask).await.unwrap();
    // Nothing is sent before the client asks for it.
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), socket.read(&mut byte)).await;
    assert!(early.is_err(), "a reply arrived before Flush or Sync");
    socket.write_all(&message(b'H', &[])).await.unwrap();
    // ParseComplete, ParameterDescription, RowDescription.
    assert_eq!(read_until(&mut socket, b'T').await.0, b"1tT");
    let close = [vec![b'S'], cstr("s1")].concat();
    let run = [message(b'C', &close), message(b'S', &[])].concat();
    socket.write_all(&run).await.unwrap();
    assert_eq!(read_until(&mut socket, b'Z').await.0, b"3Z");
    // The closed statement is gone: describing it is an error, then ready.
    let again = [message(b'D', &describe), message(b'S', &[])].concat();
    socket.write_all(&again).await.unwrap();
    let (types, errors) = read_until(&mut socket, b'Z').await;
    assert_eq!(types, b"EZ", "{errors}");
    assert_fresh_connection_works(mesh.mesh.pgwire_addr()).await;
}
