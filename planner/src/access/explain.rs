//! EXPLAIN output as a user may read it.
//!
//! A plan shows more than the query's answer: the federation node names the
//! source's host, port, database and user (`compute_context=...`), file
//! scans list server paths and object-store URLs (`file_groups=...`), and
//! the part of the plan that applies the policy to a table shows its row
//! filters and masks — for a SQL source inside the remote SQL. Policy admins
//! see all of it; every other user gets the same plan with those parts
//! replaced by markers:
//! - the sub-plan below a policy barrier (`PolicyBarrierExec`, see
//!   `policy_barrier`) becomes one `<policy>` line: it is where filters and
//!   masks live, whatever shape the lead-up to the raw scan takes;
//! - `compute_context=` and `file_groups=` values become `<hidden>`;
//! - any other object-store URL or absolute path becomes `<location>`.
//!
//! The redaction works on the text of the `indent` format (EXPLAIN,
//! EXPLAIN VERBOSE, EXPLAIN ANALYZE): it is the only format whose tree
//! structure can be read back reliably, so a plan in another format that
//! contains a policy barrier is replaced whole for non-admins. Known
//! secrets (source passwords, see `meshgate_connectors::secrets`) are
//! removed for everyone.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::error::Result;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;

/// The node that separates a table's policy view from the user's query.
const POLICY_MARKERS: &[&str] = &["PolicyBarrierExec"];

/// What replaces a policy sub-plan.
pub(crate) const POLICY_PLACEHOLDER: &str = "<policy>";

/// Whether `schema` is that of EXPLAIN output (`plan_type`, `plan`).
pub(crate) fn is_explain_output(schema: &Schema) -> bool {
    let fields = schema.fields();
    fields.len() == 2
        && fields[0].name() == "plan_type"
        && fields[1].name() == "plan"
        && fields
            .iter()
            .all(|f| matches!(f.data_type(), DataType::Utf8 | DataType::Utf8View))
}

/// `stream` (EXPLAIN output) with the `plan` column redacted for a user
/// who is not (`admin == false`) or is a policy admin.
pub(crate) fn redact_stream(
    stream: SendableRecordBatchStream,
    admin: bool,
) -> SendableRecordBatchStream {
    let schema = stream.schema();
    let redacted = stream.map(move |batch| batch.and_then(|b| redact_batch(&b, admin)));
    Box::pin(RecordBatchStreamAdapter::new(schema, redacted))
}

fn redact_batch(batch: &RecordBatch, admin: bool) -> Result<RecordBatch> {
    let plans = batch.column(1);
    let text: Vec<Option<String>> = match plans.data_type() {
        DataType::Utf8View => plans
            .as_string_view()
            .iter()
            .map(|p| p.map(|p| redact_plan(p, admin)))
            .collect(),
        _ => plans
            .as_string::<i32>()
            .iter()
            .map(|p| p.map(|p| redact_plan(p, admin)))
            .collect(),
    };
    let column: ArrayRef = Arc::new(StringArray::from(text));
    let column = datafusion::arrow::compute::cast(&column, plans.data_type())?;
    debug_assert_eq!(column.len(), batch.num_rows());
    Ok(RecordBatch::try_new(
        batch.schema(),
        vec![batch.column(0).clone(), column],
    )?)
}

/// One plan's text as the user may read it (see the module docs).
pub(crate) fn redact_plan(plan: &str, admin: bool) -> String {
    let plan = meshgate_connectors::secrets::redact(plan).into_owned();
    if admin {
        return plan;
    }
    let has_policy = POLICY_MARKERS.iter().any(|m| plan.contains(m));
    if has_policy && !is_indent_format(&plan) {
        return format!("{POLICY_PLACEHOLDER} (this plan format is shown to policy admins only)");
    }
    let plan = if has_policy {
        hide_policy_subplans(&plan)
    } else {
        plan
    };
    plan.lines().map(redact_line).collect::<Vec<_>>().join("\n")
}

/// Whether `plan` is in the `indent` format (not tree, graphviz or JSON).
fn is_indent_format(plan: &str) -> bool {
    let start = plan.trim_start();
    !(plan.contains('┌')
        || plan.contains('│')
        || start.starts_with('{')
        || start.starts_with('[')
        || plan.contains("digraph"))
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Replace everything below each policy marker by [`POLICY_PLACEHOLDER`].
fn hide_policy_subplans(plan: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut hiding: Option<usize> = None;
    for line in plan.lines() {
        let indent = indent_of(line);
        if let Some(marker_indent) = hiding {
            if indent > marker_indent && !line.trim().is_empty() {
                continue;
            }
            hiding = None;
        }
        out.push(line.to_owned());
        if POLICY_MARKERS
            .iter()
            .any(|m| line.trim_start().starts_with(m))
        {
            out.push(format!("{}  {POLICY_PLACEHOLDER}", " ".repeat(indent)));
            hiding = Some(indent);
        }
    }
    out.join("\n")
}

/// One line without connection details, file groups and locations.
fn redact_line(line: &str) -> String {
    let line = hide_value(line, "compute_context=", |rest| {
        rest.find(" base_sql=")
            .or_else(|| rest.find(", sql="))
            .unwrap_or(rest.len())
    });
    let line = hide_value(&line, "file_groups=", balanced_end);
    hide_locations(&line)
}

/// Replace what follows each `key` (up to `end(rest)`) by `<hidden>`.
fn hide_value(line: &str, key: &str, end: impl Fn(&str) -> usize) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(key) {
        let value_start = at + key.len();
        out.push_str(&rest[..value_start]);
        out.push_str("<hidden>");
        let value = &rest[value_start..];
        rest = &value[end(value).min(value.len())..];
    }
    out.push_str(rest);
    out
}

/// Length of a `{...}` / `[...]` group at the start of `s` (or of the
/// first word when it does not start with one).
fn balanced_end(s: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' | '[' | '(' => depth += 1,
            '}' | ']' | ')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + c.len_utf8();
                }
            }
            ',' | ' ' if depth == 0 => return i,
            _ => {}
        }
    }
    s.len()
}

/// URL schemes of object stores and file locations.
const SCHEMES: &[&str] = &[
    "file://",
    "s3://",
    "s3a://",
    "gs://",
    "gcs://",
    "az://",
    "azure://",
    "abfs://",
    "abfss://",
    "adl://",
    "hdfs://",
    "http://",
    "https://",
    "memory://",
];

fn is_delimiter(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | ']' | ')' | '}' | '"' | '\'' | ';' | '|')
}

/// Replace object-store URLs and absolute paths by `<location>`.
fn hide_locations(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let rest = &line[at..];
        let starts_token = i == 0
            || matches!(
                chars[i - 1].1,
                ' ' | '[' | '(' | '=' | ',' | '"' | '\'' | ':' | '{'
            );
        let url = SCHEMES.iter().any(|s| {
            rest.get(..s.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(s))
        });
        let path = c == '/'
            && starts_token
            && rest[1..]
                .chars()
                .next()
                .is_some_and(|n| n.is_alphanumeric() || matches!(n, '.' | '_' | '-' | '~'))
            && rest[1..]
                .split(is_delimiter)
                .next()
                .is_some_and(|token| token.contains('/'));
        if (url && starts_token) || path {
            out.push_str("<location>");
            while i < chars.len() && !is_delimiter(chars[i].1) {
                i += 1;
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEDERATED: &str = "ProjectionExec: expr=[id@0 as id]\n  VirtualExecutionPlan name=postgres compute_context=host=\"db.internal\",port=5432,db=sales,user=reader, base_sql=SELECT \"id\" FROM \"public\".\"t\" rewritten_sql_query=SELECT 1";

    #[test]
    fn connection_details_are_hidden_but_the_remote_sql_stays() {
        let out = redact_plan(FEDERATED, false);
        for secret in ["db.internal", "5432", "sales", "reader"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        assert!(out.contains("compute_context=<hidden>"), "{out}");
        assert!(out.contains("base_sql=SELECT \"id\" FROM"), "{out}");
        assert_eq!(redact_plan(FEDERATED, true), FEDERATED);
    }

    #[test]
    fn file_groups_and_paths_are_hidden() {
        let plan = "DataSourceExec: file_groups={2 groups: [[/srv/data/members/a.csv:0..10], [/srv/data/members/b.csv]]}, projection=[id, name], file_type=csv, has_header=true\nDeltaScan: table_uri=s3://bucket/claims/ x=file:///srv/data/t.parquet";
        let out = redact_plan(plan, false);
        assert!(!out.contains("/srv/"), "{out}");
        assert!(!out.contains("bucket"), "{out}");
        assert!(
            out.contains("file_groups=<hidden>, projection=[id, name]"),
            "{out}"
        );
        assert!(out.contains("table_uri=<location>"), "{out}");
    }

    #[test]
    fn division_is_not_a_path() {
        let line = "ProjectionExec: expr=[a@0 / b@1 as q, CAST(a@0 AS Float64) / 2 as h]";
        assert_eq!(redact_plan(line, false), line);
    }

    #[test]
    fn policy_subplans_become_a_marker() {
        let plan = "ProjectionExec: expr=[id@0 as id]\n  FilterExec: id@0 > 1\n    PolicyBarrierExec: table=members.public.members\n      ProjectionExec: expr=[id@0 as id, *** as last_name]\n        FilterExec: state@3 != NY\n          DataSourceExec: file_groups={1 group: [[/x/y.csv]]}\n  OtherExec: after";
        let out = redact_plan(plan, false);
        assert!(!out.contains("NY"), "{out}");
        assert!(!out.contains("***"), "{out}");
        assert!(out.contains("PolicyBarrierExec: table=members.public.members\n      <policy>\n  OtherExec: after"), "{out}");
        assert!(out.contains("FilterExec: id@0 > 1"), "{out}");
    }

    #[test]
    fn other_formats_with_a_policy_are_replaced_whole() {
        let tree = "┌───────────┐\n│ PolicyBarrierExec │\n│ state != NY │";
        let out = redact_plan(tree, false);
        assert!(!out.contains("NY"), "{out}");
    }
}
