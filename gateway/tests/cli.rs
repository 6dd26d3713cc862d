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

/// Run `meshgate` with `args` and the admin credentials in the environment.
async fn meshgate(args: Vec<String>, password: &str) -> std::process::Output {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        Command::new(MESHGATE)
            .args(&args)
            .env("MESHGATE_PASSWORD", password)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// The demo mesh in a temporary directory (ports 0), with or without its
/// policy: the directory and its `meshgate.toml`.
async fn demo(with_policy: bool) -> (tempfile::TempDir, std::path::PathBuf) {
    use meshgate_gateway::demo::{write_demo, DemoOptions};
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_demo(&DemoOptions {
        data_dir: dir.path().to_path_buf(),
        pgwire_address: "127.0.0.1:0".into(),
        flight_sql_address: Some("127.0.0.1:0".into()),
        http_address: None,
        with_policy,
    })
    .await
    .unwrap();
    (dir, config_path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_admin_commands_list_diff_and_apply_with_versions() {
    use meshgate_gateway::auth::PasswordHash;

    let (dir, config_path) = demo(false).await;
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "admins = [\"user:root\"]\n[[grants]]\neffect = \"allow\"\nprincipals = [\"user:analyst\"]\ntables = [\"members.public.*\"]\n",
    )
    .unwrap();
    let mut text = std::fs::read_to_string(&config_path).unwrap();
    text.push_str(&format!(
        "\n[users.root]\npassword = \"{}\"\n[policy]\nfile = \"{}\"\n",
        PasswordHash::generate("root-pw"),
        policy.display()
    ));
    std::fs::write(&config_path, text).unwrap();
    let config = meshgate_gateway::Config::load(&config_path).unwrap();
    let gateway = meshgate_gateway::Gateway::build(config)
        .await
        .unwrap()
        .start()
        .await
        .unwrap();
    let server = format!("http://{}", gateway.flight_sql_addr.unwrap());
    let target = |cmd: &[&str], user: &str| -> Vec<String> {
        let mut args: Vec<String> = ["policy"]
            .iter()
            .chain(cmd)
            .map(|s| s.to_string())
            .collect();
        args.extend([
            "--server".into(),
            server.clone(),
            "--user".into(),
            user.into(),
        ]);
        args
    };

    let out = meshgate(target(&["list"], "root"), "root-pw").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("policy version 0"), "{stdout}");
    assert!(
        stdout.contains("grants[0]\tallow select on members.public.* to user:analyst"),
        "{stdout}"
    );

    // A non-admin is refused.
    let out = meshgate(target(&["list"], "analyst"), "meshgate").await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a policy admin"));

    // get → edit → diff → apply.
    let out = meshgate(target(&["get"], "root"), "root-pw").await;
    let current = String::from_utf8(out.stdout).unwrap();
    assert!(current.contains("version = 0"), "{current}");
    let edited = dir.path().join("edited.toml");
    std::fs::write(
        &edited,
        format!("{current}\n[[grants]]\neffect = \"allow\"\nprincipals = [\"user:analyst\"]\ntables = [\"claims.public.claims\"]\n"),
    )
    .unwrap();
    let file = edited.display().to_string();
    let out = meshgate(target(&["diff", &file], "root"), "root-pw").await;
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        diff.contains("+tables = [\"claims.public.claims\"]"),
        "{diff}"
    );
    let out = meshgate(target(&["apply", &file], "root"), "root-pw").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied as policy version 1"));
    let saved = std::fs::read_to_string(&policy).unwrap();
    assert!(
        saved.contains("version = 1") && saved.contains("claims.public.claims"),
        "{saved}"
    );

    // The same file again is based on version 0: refused, nothing changes.
    let out = meshgate(target(&["apply", &file], "root"), "root-pw").await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("version 1, not 0"), "{stderr}");

    // An invalid document: diff names the problem and fails.
    std::fs::write(&edited, "[[grants]]\neffect = \"allow\"\nprincipals = [\"user:analyst\"]\ntables = [\"nope.*.*\"]\n").unwrap();
    let out = meshgate(target(&["diff", &file], "root"), "root-pw").await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("matches no table"));
    gateway.shutdown().await;
}

#[tokio::test]
async fn the_demo_checks_and_policy_explain_names_the_tag_that_masked() {
    let (dir, config_path) = demo(true).await;
    let check = Command::new(MESHGATE)
        .arg("check-config")
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let output = Command::new(MESHGATE)
        .args(["policy", "explain", "--config"])
        .arg(&config_path)
        .args([
            "--user",
            "analyst",
            "SELECT last_name, plan FROM members.public.members",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("replaces last_name with NULL (column tagged `pii`)"),
        "{stdout}"
    );
    assert!(!stdout.contains("replaces plan"), "{stdout}");

    // A descriptor problem names the descriptor file, the key and the problem.
    let descriptor = dir.path().join("members/products.yaml");
    let text = std::fs::read_to_string(&descriptor).unwrap();
    std::fs::write(
        &descriptor,
        text.replace("freshness: 24h", "freshness: soon"),
    )
    .unwrap();
    let check = Command::new(MESHGATE)
        .arg("check-config")
        .arg(&config_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success());
    assert!(
        stderr.contains("products.yaml: products[0].slo.freshness: `soon` is not a duration"),
        "{stderr}"
    );
}

#[tokio::test]
async fn product_init_drafts_a_descriptor_that_validate_accepts() {
    let (dir, config_path) = demo(false).await;
    let output = Command::new(MESHGATE)
        .args(["product", "init", "--config"])
        .arg(&config_path)
        .args([
            "providers.public.providers",
            "--owner",
            "network",
            "--name",
            "clinics",
        ])
        .output()
        .unwrap();
    let yaml = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(yaml.contains("name: clinics"), "{yaml}");
    assert!(
        yaml.contains("name: provider_id") && yaml.contains("type: integer"),
        "{yaml}"
    );
    assert!(yaml.contains("status: proposed"), "{yaml}");
    // The key the data holds is inferred; a repeated column is not a key.
    let drafted = meshgate_planner::DescriptorFile::from_yaml(&yaml).unwrap();
    let column = |name: &str| {
        drafted.products[0].tables[0]
            .columns
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .clone()
    };
    assert!(column("provider_id").unique && !column("provider_id").nullable);
    assert!(!column("specialty").unique, "{yaml}");

    // Every demo product keeps its contract.
    let validate = |config: &std::path::Path| {
        Command::new(MESHGATE)
            .args(["product", "validate", "--config"])
            .arg(config)
            .output()
            .unwrap()
    };
    let output = validate(&config_path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        3,
        "{stdout}"
    );

    // A promise the source does not keep is reported, and the command fails.
    let descriptor = dir.path().join("providers/products.yaml");
    let text = std::fs::read_to_string(&descriptor).unwrap();
    std::fs::write(
        &descriptor,
        text.replace(
            "{ name: specialty, type: varchar",
            "{ name: specialty, type: bigint",
        ),
    )
    .unwrap();
    let output = validate(&config_path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(
        stdout.contains("BROKEN  providers providers.public.providers: data product `providers` breaks its contract: column `specialty`"),
        "{stdout}"
    );
}
