//! Rewrites of PostgreSQL SQL text before it is parsed: probe queries of
//! known clients whose text DataFusion cannot plan.

/// Exact fragments of client queries that DataFusion cannot plan, each
/// replaced by what it means for meshgate's catalog.
///
/// The first two compare `regproc`
/// columns with 0. `pg_type.typreceive`/`typsend` hold function names here
/// (PostgreSQL shows `-` for "none"), so the comparison is made on the name.
/// Source: the ADBC PostgreSQL driver's type-resolution query
/// (`... WHERE (typreceive != 0 OR typsend != 0) AND typtype != 'r' ...`).
const KNOWN_PROBES: &[(&str, &str)] = &[
    (
        "(typreceive != 0 OR typsend != 0)",
        "(typreceive != '-' OR typsend != '-')",
    ),
    (
        "typreceive::TEXT != 'array_recv'",
        "typreceive != 'array_recv'",
    ),
    // psql's `\d+` lists storage options, appending the TOAST table's
    // through an ARRAY() subquery over a correlated unnest; meshgate tables
    // have neither.
    (
        "pg_catalog.array_to_string(c.reloptions || array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x), ', ')",
        "CAST(NULL AS TEXT)",
    ),
    // psql's `\dp` names each row-security policy's roles through an
    // ARRAY() subquery nested in another, correlated to both; meshgate's
    // pg_policy has no rows (its policies are the access policy's), so the
    // inner list is never built.
    (
        "pg_catalog.array_to_string(\n               ARRAY(\n                   SELECT rolname\n                   FROM pg_catalog.pg_roles\n                   WHERE oid = ANY (polroles)\n                   ORDER BY 1\n               ), E', ')",
        "CAST(NULL AS TEXT)",
    ),
];

/// Apply [`KNOWN_PROBES`] to `sql`, and drop the `pg_catalog.` schema
/// from function names cast to `regproc` (`'pg_catalog.array_in'::regproc`,
/// as pgjdbc writes it): the name is looked up in `pg_proc.proname`, and
/// every built-in function lives in pg_catalog.
pub(crate) fn rewrite_known_probes(sql: &str) -> std::borrow::Cow<'_, str> {
    let mut out = std::borrow::Cow::Borrowed(sql);
    for (from, to) in KNOWN_PROBES {
        if out.contains(from) {
            out = std::borrow::Cow::Owned(out.replace(from, to));
        }
    }
    if out.contains("'pg_catalog.") && out.to_ascii_lowercase().contains("'::regproc") {
        out = std::borrow::Cow::Owned(unqualify_regproc_literals(&out));
    }
    out
}

fn unqualify_regproc_literals(sql: &str) -> String {
    const PREFIX: &str = "'pg_catalog.";
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(PREFIX) {
        let name_start = at + PREFIX.len();
        let name_len = rest[name_start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len() - name_start);
        let after = &rest[name_start + name_len..];
        let is_regproc = after
            .get(..10)
            .is_some_and(|s| s.eq_ignore_ascii_case("'::regproc"));
        out.push_str(&rest[..at]);
        out.push('\'');
        if !is_regproc {
            out.push_str("pg_catalog.");
        }
        rest = &rest[name_start..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regproc_literals_lose_their_schema() {
        assert_eq!(
            rewrite_known_probes("SELECT typinput='pg_catalog.array_in'::regproc, 'pg_catalog.x'"),
            "SELECT typinput='array_in'::regproc, 'pg_catalog.x'"
        );
    }

    #[test]
    fn known_probes_are_rewritten_and_others_left_alone() {
        let adbc = "SELECT oid FROM pg_catalog.pg_type WHERE (typreceive != 0 OR typsend != 0) AND typtype != 'r'";
        assert!(rewrite_known_probes(adbc).contains("typreceive != '-'"));
        assert!(matches!(
            rewrite_known_probes("SELECT 1"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
