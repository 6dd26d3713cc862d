//! The `meshgate` command line as a user runs it (cargo builds the binary
//! for this test target).

use std::process::Command;

const MESHGATE: &str = env!("CARGO_BIN_EXE_meshgate");

#[test]
fn check_config_names_file_key_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[listeners.pgwire]\naddress = \"127.0.0.1:0\"\n[catalogs.sales]\nconnector = \"files\"\n[catalogs.sales.tables.orders]\npath = \"orders.csv\"\ndelimiter = \";;\"\n",
    )
    .unwrap();
    let output = Command::new(MESHGATE)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml"), "{stderr}");
    assert!(
        stderr.contains("catalogs.sales.tables.orders.delimiter"),
        "{stderr}"
    );
    assert!(stderr.contains("single ASCII character"), "{stderr}");

    std::fs::write(&path, "[users.bob]\npassword = \"hunter2\"\n").unwrap();
    let output = Command::new(MESHGATE)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("users.bob.password"), "{stderr}");
}

#[test]
fn hash_password_output_is_accepted_by_check_config() {
    let output = Command::new(MESHGATE)
        .args(["hash-password", "pw"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let hash = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("pbkdf2-sha256$4096$"), "{hash}");
    assert!(
        !hash.contains("pw$"),
        "the password itself is not in the hash"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.toml");
    std::fs::write(&path, format!("[users.bob]\npassword = \"{hash}\"\n")).unwrap();
    let output = Command::new(MESHGATE)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
