//! What planning a statement produces ([`Prepared`]) and what running it
//! yields ([`QueryOutput`]).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::{LogicalPlan, Statement as PlanStatement};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::sql::sqlparser::ast;
use meshgate_policy::Policy;

use super::run_memo::RunMemo;
use crate::access::admin_statements::PolicyStatement;
use crate::plan_cache::PlanCache;
use crate::QueryResult;

/// A statement ready to run: planned once, executed any number of times.
#[derive(Debug, Clone)]
pub enum Prepared {
    Query {
        sql: String,
        plan: LogicalPlan,
        /// The optimised plan, shared by clones (see [`PlanCache`]).
        cache: PlanCache,
        /// What its runs work out the same way (see [`RunMemo`]).
        memo: RunMemo,
        /// The policy the plan was made under: an execution under another
        /// policy plans the statement again.
        policy: Option<Arc<Policy>>,
        /// The tables the statement names, fully qualified (for the audit
        /// record; empty when no audit log is kept).
        tables: Vec<String>,
        /// The catalog set the plan was made over: an execution after the
        /// catalogs were reloaded plans the statement again.
        catalogs: u64,
    },
    Command {
        sql: String,
        command: SessionCommand,
        tables: Vec<String>,
    },
    Empty,
}

/// Statements the session answers itself rather than DataFusion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCommand {
    Set {
        name: String,
        value: Option<String>,
    },
    ResetAll,
    Show(String),
    ShowAll,
    Begin,
    Commit,
    Rollback,
    DiscardAll,
    Savepoint(String),
    ReleaseSavepoint(String),
    RollbackToSavepoint(String),
    /// `DECLARE name CURSOR FOR query`
    Declare {
        name: String,
        query: Box<ast::Query>,
    },
    /// `FETCH [n | ALL | NEXT] FROM name`; `None` = all remaining rows.
    Fetch {
        name: String,
        count: Option<usize>,
    },
    /// `CLOSE name` / `CLOSE ALL`
    Close(Option<String>),
    /// Accepted with nothing to do; the command tag to answer.
    Noop(String),
    /// `CALL system.refresh_catalog('name')`: drop cached metadata of a catalog.
    RefreshCatalog(String),
    /// `CALL system.kill_query('id')`: stop a running statement.
    KillQuery(String),
    /// `CALL system.check_product('name')`: run the product's quality rules.
    CheckProduct(String),
    /// `CREATE ROLE`, `DROP ROLE`, `GRANT`, `REVOKE`: a policy change.
    Policy(PolicyStatement),
    /// `COPY (query) TO STDOUT` / `COPY table TO STDOUT`
    CopyOut {
        query: Box<ast::Query>,
        options: CopyOptions,
    },
}

/// How `COPY ... TO STDOUT` writes rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    pub format: CopyFormat,
    pub header: bool,
    pub delimiter: Option<char>,
    pub null: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
    Binary,
}

impl Prepared {
    /// The same statement recorded under another text (the text a client
    /// sent for a plan made from its shape); the kept plan is shared.
    pub(crate) fn with_sql(&self, text: String) -> Prepared {
        let mut copy = self.clone();
        if let Prepared::Query { sql, .. } | Prepared::Command { sql, .. } = &mut copy {
            *sql = text;
        }
        copy
    }

    /// What the statement's runs work out the same way (none for commands).
    pub(crate) fn memo(&self) -> Option<&RunMemo> {
        match self {
            Prepared::Query { memo, .. } => Some(memo),
            _ => None,
        }
    }

    pub fn sql(&self) -> &str {
        match self {
            Prepared::Query { sql, .. } | Prepared::Command { sql, .. } => sql,
            Prepared::Empty => "",
        }
    }

    /// The tables the statement names, fully qualified, as resolved when it
    /// was planned (empty when no audit log is kept).
    pub fn tables(&self) -> &[String] {
        match self {
            Prepared::Query { tables, .. } | Prepared::Command { tables, .. } => tables,
            Prepared::Empty => &[],
        }
    }

    /// Whether the statement was planned under `policy` (the version in
    /// force, see [`crate::QueryService::policy`]). A plan made under
    /// another one still runs correctly (executing it plans it again), but
    /// its schema and its errors may be out of date.
    pub fn is_planned_under(&self, policy: Option<&Arc<Policy>>) -> bool {
        match self {
            Prepared::Query {
                policy: planned, ..
            } => match (planned, policy) {
                (Some(planned), Some(now)) => Arc::ptr_eq(planned, now),
                (None, None) => true,
                _ => false,
            },
            _ => true,
        }
    }

    /// About how many bytes keeping the statement holds, for stores that
    /// keep plans between requests and must stay bounded. A plan's real size
    /// is not measurable; it is counted from its shape: a fixed cost per
    /// plan node and per column of each node's schema, doubled because the
    /// first execution keeps the optimised plan beside it (see
    /// [`PlanCache`]), plus the statement text.
    pub fn approximate_bytes(&self) -> u64 {
        /// One plan node (the node and its schema's shell).
        const NODE_BYTES: u64 = 256;
        /// One column of a node's schema.
        const FIELD_BYTES: u64 = 32;
        let text = self.sql().len() as u64;
        let Prepared::Query { plan, .. } = self else {
            return text;
        };
        let (mut nodes, mut fields) = (0u64, 0u64);
        // Visiting cannot fail: the closure never returns an error.
        let _ = plan.apply_with_subqueries(|node| {
            nodes += 1;
            fields += node.schema().fields().len() as u64;
            Ok(TreeNodeRecursion::Continue)
        });
        text + 2 * (nodes * NODE_BYTES + fields * FIELD_BYTES)
    }

    /// The columns the statement returns (empty for commands without rows).
    pub fn output_schema(&self) -> SchemaRef {
        match self {
            Prepared::Query { plan, .. } if returns_rows(plan) => {
                Arc::new(plan.schema().as_arrow().clone())
            }
            Prepared::Command {
                command: SessionCommand::Show(name),
                ..
            } => show_schema(&[name.as_str()]),
            Prepared::Command {
                command: SessionCommand::ShowAll,
                ..
            } => show_schema(&["name", "setting", "description"]),
            _ => Arc::new(Schema::empty()),
        }
    }

    /// True when the statement has `$n` placeholders (worked out once per
    /// plan: every execution with values asks).
    pub(crate) fn has_parameters(&self) -> bool {
        match self {
            Prepared::Query { plan, memo, .. } => memo.has_parameters(|| {
                plan.get_parameter_types()
                    .map_or(true, |types| !types.is_empty())
            }),
            _ => false,
        }
    }

    /// Types of `$1..$n`, in order; `None` where the planner could not infer one.
    pub fn parameter_types(&self) -> QueryResult<Vec<Option<DataType>>> {
        let Prepared::Query { plan, .. } = self else {
            return Ok(vec![]);
        };
        let types = plan.get_parameter_types()?;
        let mut indexed: Vec<(usize, Option<DataType>)> = types
            .into_iter()
            .filter_map(|(name, ty)| {
                name.trim_start_matches('$')
                    .parse::<usize>()
                    .ok()
                    .map(|i| (i, ty))
            })
            .collect();
        indexed.sort_by_key(|(i, _)| *i);
        let count = indexed.last().map(|(i, _)| *i).unwrap_or(0);
        let mut out = vec![None; count];
        for (i, ty) in indexed {
            if i >= 1 {
                out[i - 1] = ty;
            }
        }
        Ok(out)
    }

    /// COMMIT, ROLLBACK and friends: the statements a failed transaction block accepts.
    pub fn ends_transaction(&self) -> bool {
        matches!(
            self,
            Prepared::Command {
                command: SessionCommand::Commit
                    | SessionCommand::Rollback
                    | SessionCommand::RollbackToSavepoint(_),
                ..
            }
        )
    }

    /// True when executing the statement yields rows (even zero of them).
    pub fn returns_rows(&self) -> bool {
        match self {
            Prepared::Query { plan, .. } => returns_rows(plan),
            Prepared::Command { command, .. } => matches!(
                command,
                SessionCommand::Show(_) | SessionCommand::ShowAll | SessionCommand::Fetch { .. }
            ),
            Prepared::Empty => false,
        }
    }

    /// The PostgreSQL command tag for statements that return no rows.
    pub fn command_tag(&self) -> String {
        match self {
            Prepared::Query { plan, .. } => match plan {
                LogicalPlan::Statement(PlanStatement::Prepare(_)) => "PREPARE".into(),
                LogicalPlan::Statement(PlanStatement::Deallocate(_)) => "DEALLOCATE".into(),
                _ => "SELECT".into(),
            },
            Prepared::Command { command, .. } => match command {
                SessionCommand::Set { .. } => "SET".into(),
                SessionCommand::ResetAll => "RESET".into(),
                SessionCommand::Show(_) | SessionCommand::ShowAll => "SHOW".into(),
                SessionCommand::Begin => "BEGIN".into(),
                SessionCommand::Commit => "COMMIT".into(),
                SessionCommand::Rollback => "ROLLBACK".into(),
                SessionCommand::DiscardAll => "DISCARD ALL".into(),
                SessionCommand::Savepoint(_) => "SAVEPOINT".into(),
                SessionCommand::ReleaseSavepoint(_) => "RELEASE".into(),
                SessionCommand::RollbackToSavepoint(_) => "ROLLBACK".into(),
                SessionCommand::Declare { .. } => "DECLARE CURSOR".into(),
                SessionCommand::Fetch { .. } => "FETCH".into(),
                SessionCommand::Close(_) => "CLOSE CURSOR".into(),
                SessionCommand::CopyOut { .. } => "COPY".into(),
                SessionCommand::Noop(tag) => tag.clone(),
                SessionCommand::RefreshCatalog(_)
                | SessionCommand::KillQuery(_)
                | SessionCommand::CheckProduct(_) => "CALL".into(),
                SessionCommand::Policy(p) => p.tag().into(),
            },
            Prepared::Empty => String::new(),
        }
    }
}

pub(super) fn returns_rows(plan: &LogicalPlan) -> bool {
    !matches!(
        plan,
        LogicalPlan::Statement(PlanStatement::Prepare(_))
            | LogicalPlan::Statement(PlanStatement::Deallocate(_))
    )
}

fn show_schema(columns: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ))
}

/// How a statement changes the client's transaction state (see
/// [`super::TransactionState`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxEffect {
    None,
    Begin,
    End,
    /// `ROLLBACK TO SAVEPOINT`: a failed block is usable again.
    Recover,
}

/// What executing a statement produced.
pub enum QueryOutput {
    /// Rows, streamed batch by batch as the plan produces them.
    Rows(SendableRecordBatchStream),
    /// A statement without rows: its PostgreSQL command tag.
    Command {
        tag: String,
    },
    /// `COPY ... TO STDOUT`: rows to write in a COPY format.
    CopyOut {
        stream: SendableRecordBatchStream,
        options: CopyOptions,
    },
    Empty,
}
