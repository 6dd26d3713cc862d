//! Connections to the PostgreSQL database the gateways of a fleet share
//! for state (the policy store, the audit store).

/// A client and the connection task to spawn for it.
pub(crate) type Connection = (
    tokio_postgres::Client,
    tokio_postgres::Connection<
        tokio_postgres::Socket,
        postgres_native_tls::TlsStream<tokio_postgres::Socket>,
    >,
);

/// A connection to `url`, encrypted as its `sslmode` asks (`prefer` by
/// default, `require` to insist). As with libpq's `prefer` and `require`,
/// the server's certificate is not verified. `what` names the store in
/// errors ("the policy store").
pub(crate) async fn connect(url: &str, what: &str) -> Result<Connection, String> {
    let tls = native_tls::TlsConnector::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .map_err(|e| format!("cannot set up TLS for {what}: {e}"))?;
    tokio_postgres::connect(url, postgres_native_tls::MakeTlsConnector::new(tls))
        .await
        .map_err(|e| format!("cannot connect to {what}: {e}"))
}

/// A connection to `url` whose connection task runs in the background.
pub(crate) async fn client(url: &str, what: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = connect(url, what).await?;
    tokio::spawn(connection);
    Ok(client)
}
