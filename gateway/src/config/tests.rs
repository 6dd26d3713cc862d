//! The configuration file: parsing, substitution and the errors that name
//! file, key and problem.

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "meshgate.toml", PathBuf::from("/tmp"))
}

#[test]
fn a_quality_schedule_needs_a_duration_and_a_user() {
    let err = parse("[products]\nquality_interval = \"soon\"\nquality_user = \"q\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("meshgate.toml: products.quality_interval:"),
        "{err}"
    );
    let err = parse("[products]\nquality_interval = \"1h\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("meshgate.toml: products.quality_user:"),
        "{err}"
    );
    let ok = parse("[products]\nquality_interval = \"90min\"\nquality_user = \"q\"\n").unwrap();
    assert_eq!(
        ok.quality_schedule().unwrap(),
        Some((std::time::Duration::from_secs(5400), "q".to_owned()))
    );
}

#[test]
fn openlineage_needs_one_target() {
    for (text, key) in [
        ("url = \"ftp://x/y\"", "products.openlineage.url:"),
        ("", "products.openlineage:"),
        ("url = \"http://x\"\nfile = \"f\"", "products.openlineage:"),
    ] {
        let err = parse(&format!("[products.openlineage]\n{text}\n"))
            .map(|c| c.openlineage().map(|_| ()))
            .and_then(|r| r)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(&format!("meshgate.toml: {key}")), "{err}");
    }
    let ok = parse("[products.openlineage]\nfile = \"ol.jsonl\"\n").unwrap();
    assert_eq!(
        ok.openlineage().unwrap(),
        Some((
            crate::openlineage::Target::File(PathBuf::from("/tmp/ol.jsonl")),
            "meshgate".to_owned()
        ))
    );
}

#[test]
fn minimal_config_has_a_pgwire_listener() {
    let config = parse("").unwrap();
    assert_eq!(config.listeners.pgwire.unwrap().address, "127.0.0.1:5433");
}

#[test]
fn unknown_keys_name_file_and_key() {
    let err = parse("[listeners.pgwire]\nadress = '127.0.0.1:1'").unwrap_err();
    let msg = err.to_string();
    assert_eq!(
        msg,
        "meshgate.toml: listeners.pgwire.adress: unknown field `adress`, expected `address`"
    );
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let msg = parse("[listeners\n").unwrap_err().to_string();
    assert!(msg.starts_with("meshgate.toml: "), "{msg}");
    assert!(msg.contains("line 1"), "{msg}");
}

#[test]
fn plaintext_passwords_are_refused() {
    let msg = parse("[users.bob]\npassword = 'hunter2'")
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("meshgate.toml: users.bob.password: "),
        "{msg}"
    );
    assert!(msg.contains("hash-password"), "{msg}");
}

#[test]
fn bad_addresses_and_connectors_are_named() {
    let msg = parse("[listeners.pgwire]\naddress = 'nowhere'")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("listeners.pgwire.address"), "{msg}");
    let msg = parse("[catalogs.x]\nconnector = 'oracle'")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("catalogs.x.connector: unknown connector `oracle`"),
        "{msg}"
    );
    let msg = parse("[catalogs.x]\nconnector = 'files'\n[catalogs.x.tables.t]\npath = 'a.csv'\ndelimiter = 'ab'")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("catalogs.x.tables.t.delimiter"), "{msg}");
}

#[test]
fn flight_sql_without_tls_needs_allow_cleartext() {
    let flight = "[listeners.flight_sql]\naddress = '127.0.0.1:0'\n";
    let msg = parse(flight).unwrap_err().to_string();
    assert!(msg.contains("listeners.flight_sql: "), "{msg}");
    assert!(msg.contains("allow_cleartext"), "{msg}");
    parse(&format!("{flight}[auth]\nallow_cleartext = true\n")).unwrap();
}

#[test]
fn jwt_settings_are_checked_with_their_key() {
    let msg = parse("[auth.jwt]\nalgorithm = \"RS256\"\nsecret = \"x\"")
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("meshgate.toml: auth.jwt.algorithm: "),
        "{msg}"
    );
    let msg = parse("[auth.jwt]\nalgorithm = \"HS256\"\nsecret = '${MESHGATE_TEST_UNSET}'")
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("meshgate.toml: auth.jwt.secret: environment variable"),
        "{msg}"
    );
}

#[test]
fn signing_keys_are_checked_with_their_key() {
    let key = |id: &str, secret: &str| {
        format!("[[auth.signing_keys]]\nid = '{id}'\nsecret = '{secret}'\n")
    };
    let long = "0123456789abcdef0123456789abcdef";
    let msg = parse(&key("k1", "short")).unwrap_err().to_string();
    assert!(
        msg.starts_with("meshgate.toml: auth.signing_keys[0].secret: must be at least 32 bytes"),
        "{msg}"
    );
    let msg = parse(&format!("{}{}", key("k1", long), key("k1", long)))
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("meshgate.toml: auth.signing_keys[1].id: `k1` is used"),
        "{msg}"
    );
    parse(&format!("{}{}", key("k2", long), key("k1", long))).unwrap();
}

#[test]
fn the_policy_and_the_audit_need_a_file_or_a_postgres_store() {
    for section in ["policy", "audit"] {
        let msg = parse(&format!("[{section}]\n")).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!("meshgate.toml: {section}: ")),
            "{msg}"
        );
        let msg = parse(&format!("[{section}]\nstore = 'mysql://x'\n"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(&format!("meshgate.toml: {section}.store: ")),
            "{msg}"
        );
    }
    parse("[audit]\nstore = 'postgres://db/audit'\n").unwrap();
}

#[test]
fn datafusion_settings_and_the_result_cache_are_checked_at_load() {
    let err = parse("[execution.datafusion]\n\"execution.no_such_knob\" = 1\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("meshgate.toml: execution.datafusion.execution.no_such_knob:"),
        "{err}"
    );
    let err = parse("[execution.datafusion]\n\"execution.parquet.pushdown_filters\" = \"maybe\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("execution.parquet.pushdown_filters"), "{err}");
    let ok =
        parse("[execution.datafusion]\n\"execution.parquet.pushdown_filters\" = true\n").unwrap();
    assert_eq!(
        ok.execution.options().unwrap().datafusion,
        vec![(
            "execution.parquet.pushdown_filters".to_owned(),
            "true".to_owned()
        )]
    );

    let err = parse("[result_cache]\nmax_bytes = \"lots\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("meshgate.toml: result_cache.max_bytes:"),
        "{err}"
    );
    let err =
        parse("[catalogs.s]\nconnector = \"files\"\nroot = \".\"\nresult_cache_ttl = \"0s\"\n")
            .unwrap_err()
            .to_string();
    assert!(
        err.starts_with("meshgate.toml: catalogs.s.result_cache_ttl:"),
        "{err}"
    );
    let ok = parse("[result_cache]\nmax_bytes = \"1MiB\"\n").unwrap();
    assert_eq!(ok.result_cache().unwrap().max_bytes, 1 << 20);
}

#[test]
fn the_ballista_scheduler_is_checked_at_load() {
    let ok = parse(
        "[execution]\nballista = \"df://scheduler:50051\"\nballista_min_scan_bytes = \"64MiB\"\n",
    )
    .unwrap();
    let ballista = ok.execution_options().unwrap().ballista.unwrap();
    assert_eq!(ballista.scheduler, "http://scheduler:50051");
    assert_eq!(ballista.min_scan_bytes, 64 << 20);
    for (text, key) in [
        ("ballista = \"scheduler:50050\"", "execution.ballista:"),
        ("ballista = \"grpc://s:1\"", "execution.ballista:"),
        (
            "ballista = \"df://s:1\"\nballista_min_scan_bytes = \"lots\"",
            "execution.ballista_min_scan_bytes:",
        ),
        (
            "ballista_min_scan_bytes = \"1GiB\"",
            "execution.ballista_min_scan_bytes:",
        ),
    ] {
        let err = parse(&format!("[execution]\n{text}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(&format!("meshgate.toml: {key}")), "{err}");
    }
}
