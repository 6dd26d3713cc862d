//! The `meshgate` binary and `psql`, as a user runs them.

use std::process::Command;

use meshgate_gateway::demo::CROSS_DOMAIN_JOIN;
use meshgate_tests::TestMesh;

#[tokio::test]
async fn psql_runs_the_cross_domain_join() {
    let mesh = TestMesh::start().await;
    let addr = mesh.pgwire_addr();
    let conn = format!(
        "host={} port={} user=analyst dbname=members",
        addr.ip(),
        addr.port()
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new("psql")
            .arg(conn)
            .args([
                "-X",
                "-A",
                "-t",
                "-F",
                "|",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                CROSS_DOMAIN_JOIN,
            ])
            .env("PGPASSWORD", "meshgate")
            .output()
            .expect("psql is installed (the CI script installs postgresql-client)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    for line in lines {
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields.len(), 4, "{line}");
        assert!(fields[2].parse::<i64>().unwrap() > 0, "{line}");
        assert!(fields[3].contains('.'), "amounts are decimals: {line}");
    }
}

#[tokio::test]
async fn psql_reports_sqlstate_of_errors() {
    let mesh = TestMesh::start().await;
    let addr = mesh.pgwire_addr();
    let conn = format!(
        "host={} port={} user=analyst dbname=members",
        addr.ip(),
        addr.port()
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new("psql")
            .arg(conn)
            .args([
                "-X",
                "-v",
                "VERBOSITY=verbose",
                "-c",
                "SELECT * FROM nope",
                "-c",
                "SELECT 42",
            ])
            .env("PGPASSWORD", "meshgate")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stderr.contains("42P01"), "{stderr}");
    assert!(
        stdout.contains("42"),
        "the next command still ran: {stdout}"
    );
}

/// Run psql; each line of `command` is one `-c` (a meta-command or SQL).
pub(crate) fn psql(mesh: &TestMesh, dbname: &str, command: &str) -> (bool, String, String) {
    let addr = mesh.pgwire_addr();
    let output = Command::new("psql")
        .arg(format!(
            "host={} port={} user=analyst dbname={dbname}",
            addr.ip(),
            addr.port()
        ))
        .args(["-X", "-v", "ON_ERROR_STOP=1"])
        .args(command.lines().flat_map(|line| ["-c", line]))
        .env("PGPASSWORD", "meshgate")
        .output()
        .expect("psql is installed");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_meta_commands_describe_the_mesh() {
    let mesh = TestMesh::start().await;
    let mesh = &mesh;
    tokio::task::block_in_place(|| {
        let (ok, out, err) = psql(mesh, "members", "\\l");
        assert!(ok, "{err}");
        for db in ["members", "claims", "providers"] {
            assert!(out.contains(db), "\\l lists {db}: {out}");
        }
        let (ok, out, err) = psql(mesh, "members", "\\dn");
        assert!(ok && out.contains("public"), "{out}{err}");
        // Like PostgreSQL, the catalog describes the connection's database only.
        let (ok, out, err) = psql(mesh, "claims", "\\dt");
        assert!(ok, "{err}");
        assert!(
            out.contains("claims") && !out.contains("providers"),
            "{out}"
        );
        let (ok, out, err) = psql(mesh, "claims", "\\d claims");
        assert!(ok, "{err}");
        for (column, ty) in [
            ("claim_id", "bigint"),
            ("service_date", "date"),
            ("status", "text"),
        ] {
            assert!(
                out.lines().any(|l| l.contains(column) && l.contains(ty)),
                "\\d claims shows {column} {ty}: {out}"
            );
        }
        let (ok, out, err) = psql(mesh, "members", "SELECT version()");
        assert!(ok && out.contains("PostgreSQL 16"), "{out}{err}");
        // \d+ and \dt+ show the descriptions written in the configuration.
        let (ok, out, err) = psql(mesh, "members", "\\d+ members");
        assert!(ok, "{err}");
        assert!(
            out.lines()
                .any(|l| l.contains("state") && l.contains("US state of residence")),
            "\\d+ members shows the column description: {out}"
        );
        // \dt+ shows the table's size (its file's) and description.
        let csv = std::fs::metadata(mesh.data_dir().join("members/members.csv"))
            .unwrap()
            .len();
        assert!(csv > 0 && csv < 10 * 1024, "{csv}");
        let (ok, out, err) = psql(mesh, "members", "\\dt+");
        assert!(ok, "{err}");
        assert!(
            out.lines().any(|l| l.contains("members")
                && l.contains(&format!("{csv} bytes"))
                && l.contains("One row per insured member.")),
            "\\dt+ shows the table size and description: {out}"
        );
        // A Delta table's size is its newest version's files; an OID no
        // visible table has reads NULL.
        let (ok, out, err) = psql(
            mesh,
            "claims",
            "SELECT pg_table_size('claims'::regclass) > 0, pg_total_relation_size('claims'::regclass) = pg_table_size('claims'::regclass), pg_indexes_size('claims'::regclass), pg_table_size(987654) IS NULL",
        );
        let cells = |l: &str| l.split('|').map(str::trim).collect::<Vec<_>>().join(",");
        assert!(
            ok && out.lines().any(|l| cells(l) == "t,t,0,t"),
            "{out}{err}"
        );
        // \dp: what the session may do with each table it sees (read).
        let (ok, out, err) = psql(mesh, "members", "\\dp");
        assert!(ok, "{err}");
        assert!(
            out.lines()
                .any(|l| l.contains("members") && l.contains("analyst=r/analyst")),
            "\\dp shows the table's privileges: {out}"
        );
        // An array written as text compares with an array column, also
        // inside an aggregate.
        let (ok, out, err) = psql(
            mesh,
            "members",
            "SELECT count(CASE WHEN polroles <> '{0}' THEN 1 END) AS n, count(*) FILTER (WHERE indisprimary = 't') AS k FROM pg_catalog.pg_policy, pg_catalog.pg_index",
        );
        assert!(ok && out.contains(" 0 | 0"), "{out}{err}");
        let (ok, out, err) = psql(mesh, "members", "\\dt *.*");
        assert!(ok, "{err}");
        assert!(
            out.contains("pg_catalog")
                && out
                    .lines()
                    .any(|l| l.contains("public") && l.contains("members")),
            "{out}"
        );
        let (ok, out, err) = psql(
            mesh,
            "members",
            "\\x\nSELECT member_id, state FROM members ORDER BY member_id LIMIT 1",
        );
        assert!(ok, "{err}");
        assert!(
            out.contains("-[ RECORD 1 ]") && out.contains("member_id | 1000"),
            "{out}"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_copy_to_stdout_writes_csv_and_text() {
    let mesh = TestMesh::start().await;
    let mesh = &mesh;
    tokio::task::block_in_place(|| {
        let (ok, out, err) = psql(
            mesh,
            "members",
            "\\copy (SELECT member_id, state FROM members ORDER BY member_id LIMIT 3) TO STDOUT WITH CSV HEADER",
        );
        assert!(ok, "{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "member_id,state");
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[1].starts_with("1000,"), "{out}");
        let (ok, out, err) = psql(
            mesh,
            "members",
            "COPY (SELECT 1::bigint AS a, NULL::text AS b) TO STDOUT",
        );
        assert!(ok, "{err}");
        assert_eq!(out.trim_end(), "1\t\\N");
    });
}
