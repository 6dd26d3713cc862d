//! TLS on both listeners with a self-signed certificate made here. With TLS
//! configured, plaintext clients are refused rather than served.

use std::process::Command;

use arrow_flight::sql::client::FlightSqlServiceClient;
use meshgate_tests::TestMesh;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

struct Certs {
    _dir: tempfile::TempDir,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    pem: String,
}

fn self_signed() -> Certs {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("server.crt");
    let key = dir.path().join("server.key");
    let pem = certified.cert.pem();
    std::fs::write(&cert, &pem).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    Certs {
        _dir: dir,
        cert,
        key,
        pem,
    }
}

async fn tls_mesh(certs: &Certs) -> TestMesh {
    let tls = format!(
        "\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        certs.cert.display(),
        certs.key.display()
    );
    TestMesh::start_with(|config| config.push_str(&tls)).await
}

#[tokio::test]
async fn pgwire_requires_tls_and_psql_verifies_the_certificate() {
    let certs = self_signed();
    let mesh = tls_mesh(&certs).await;

    // A plaintext client is refused, not silently served.
    let Err(err) = mesh.connect_as("analyst", "meshgate", "members").await else {
        panic!("plaintext connection must be refused when TLS is configured");
    };
    assert_eq!(err.code().map(|c| c.code()), Some("28000"), "{err}");

    let addr = mesh.pgwire_addr();
    let conn = format!(
        "host=localhost hostaddr={} port={} user=analyst dbname=members sslmode=verify-full sslrootcert={}",
        addr.ip(),
        addr.port(),
        certs.cert.display()
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new("psql")
            .arg(conn)
            .args([
                "-X",
                "-A",
                "-t",
                "-c",
                "SELECT ssl_probe FROM (SELECT 'over tls' AS ssl_probe)",
            ])
            .env("PGPASSWORD", "meshgate")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "over tls");
}

#[tokio::test]
async fn flight_sql_serves_tls_and_refuses_plaintext() {
    let certs = self_signed();
    let mesh = tls_mesh(&certs).await;
    let addr = mesh.flight_sql_addr();

    let channel = Channel::from_shared(format!("https://localhost:{}", addr.port()))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&certs.pem))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .expect("TLS connect");
    let mut client = FlightSqlServiceClient::new(channel);
    client
        .handshake("analyst", "meshgate")
        .await
        .expect("handshake over TLS");
    let info = client
        .execute("SELECT 1 AS one".into(), None)
        .await
        .unwrap();
    assert_eq!(info.endpoint.len(), 1);

    // Plaintext HTTP/2 to the TLS port fails.
    let plain = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await;
    let works = match plain {
        Err(_) => false,
        Ok(channel) => FlightSqlServiceClient::new(channel)
            .handshake("analyst", "meshgate")
            .await
            .is_ok(),
    };
    assert!(
        !works,
        "plaintext must not be served when TLS is configured"
    );
}
