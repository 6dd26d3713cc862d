//! Running the session commands meshgate answers itself (`SET`, `SHOW`,
//! transactions, cursors, `COPY`, policy statements, `CALL` of
//! `system.refresh_catalog` and `system.kill_query`).

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::stream;

use super::cursors::Cursor;
use super::prepared::{Prepared, QueryOutput, SessionCommand, TxEffect};
use super::QuerySession;
use crate::{QueryError, QueryResult};

impl QuerySession {
    /// Run a session command; the output and how it changes the client's
    /// transaction state.
    pub(super) async fn run_command(
        &mut self,
        command: &SessionCommand,
        prepared: &Prepared,
    ) -> QueryResult<(QueryOutput, TxEffect)> {
        let tag = prepared.command_tag();
        let tx = match command {
            SessionCommand::Set { name, value } => {
                self.settings
                    .write()
                    .expect("settings lock")
                    .set(name, value.as_deref())?;
                if name.eq_ignore_ascii_case("search_path") {
                    self.apply_search_path();
                }
                if name.eq_ignore_ascii_case("timezone") {
                    let tz = self
                        .settings
                        .read()
                        .expect("settings lock")
                        .get("TimeZone")?
                        .to_owned();
                    self.ctx
                        .state_ref()
                        .write()
                        .config_mut()
                        .options_mut()
                        .execution
                        .time_zone = Some(tz);
                }
                TxEffect::None
            }
            SessionCommand::ResetAll | SessionCommand::DiscardAll => {
                if matches!(command, SessionCommand::DiscardAll) {
                    self.cursors.get_mut().expect("cursor lock").clear();
                }
                self.settings.write().expect("settings lock").reset_all();
                self.apply_search_path();
                TxEffect::None
            }
            SessionCommand::Show(name) => {
                let value = self
                    .settings
                    .read()
                    .expect("settings lock")
                    .get(name)?
                    .to_owned();
                return Ok((
                    rows(prepared.output_schema(), vec![vec![value]]),
                    TxEffect::None,
                ));
            }
            SessionCommand::ShowAll => {
                let all = self
                    .settings
                    .read()
                    .expect("settings lock")
                    .all()
                    .into_iter()
                    .map(|(n, v, d)| vec![n, v, d])
                    .collect();
                return Ok((rows(prepared.output_schema(), all), TxEffect::None));
            }
            SessionCommand::Begin => TxEffect::Begin,
            SessionCommand::Commit | SessionCommand::Rollback => {
                // Cursors without HOLD end with their transaction; meshgate
                // keeps them all until CLOSE or the session ends.
                TxEffect::End
            }
            SessionCommand::Savepoint(_)
            | SessionCommand::ReleaseSavepoint(_)
            | SessionCommand::Noop(_) => TxEffect::None,
            SessionCommand::RollbackToSavepoint(_) => TxEffect::Recover,
            SessionCommand::Policy(statement) => {
                if !self.admin.is_admin(&self.identity) {
                    return Err(QueryError::PermissionDenied(format!(
                        "permission denied to {}: only policy admins change the access policy",
                        statement.tag()
                    )));
                }
                let (catalog, schema) = (self.catalog.clone(), self.current_schema());
                self.admin
                    .update(None, |doc| statement.apply(doc, &catalog, &schema))
                    .await?;
                TxEffect::None
            }
            SessionCommand::RefreshCatalog(name) => {
                if !self.is_policy_admin() {
                    return Err(QueryError::PermissionDenied(
                        "permission denied for procedure system.refresh_catalog: \
                         only policy admins call it"
                            .into(),
                    ));
                }
                // Only catalogs the caller's session contains can be refreshed.
                let catalog = self
                    .ctx
                    .catalog(name)
                    .and_then(|_| self.registry.catalogs().get(name).cloned())
                    .ok_or_else(|| {
                        QueryError::UndefinedObject(format!("catalog \"{name}\" does not exist"))
                    })?;
                if let Some(Err(err)) = meshgate_connectors::refresh_catalog(&catalog).await {
                    return Err(QueryError::Source(err.to_string()));
                }
                self.registry.load_comments(name).await;
                TxEffect::None
            }
            SessionCommand::KillQuery(id) => {
                self.runtime
                    .cancel(id, &self.identity.user, self.is_policy_admin())?;
                TxEffect::None
            }
            SessionCommand::CheckProduct(name) => {
                self.check_product(name).await?;
                TxEffect::None
            }
            SessionCommand::Declare { name, query } => {
                let cursors = self.cursors.get_mut().expect("cursor lock");
                if cursors.contains_key(name) {
                    return Err(QueryError::DuplicateCursor(format!(
                        "cursor \"{name}\" already exists"
                    )));
                }
                let stream = self.start(query).await?;
                self.cursors.get_mut().expect("cursor lock").insert(
                    name.clone(),
                    Cursor {
                        stream,
                        pending: None,
                    },
                );
                TxEffect::None
            }
            SessionCommand::Fetch { name, count } => {
                let schema = self.describe(prepared);
                let batches = self.fetch(name, *count).await?;
                let stream = stream::iter(batches.into_iter().map(Ok));
                let stream = RecordBatchStreamAdapter::new(schema, stream);
                return Ok((QueryOutput::Rows(Box::pin(stream)), TxEffect::None));
            }
            SessionCommand::Close(name) => {
                match name {
                    Some(name) => {
                        let cursors = self.cursors.get_mut().expect("cursor lock");
                        cursors.remove(name).ok_or_else(|| {
                            QueryError::UndefinedCursor(format!("cursor \"{name}\" does not exist"))
                        })?;
                    }
                    None => self.cursors.get_mut().expect("cursor lock").clear(),
                }
                TxEffect::None
            }
            SessionCommand::CopyOut { query, options } => {
                let stream = self.start(query).await?;
                let options = options.clone();
                return Ok((QueryOutput::CopyOut { stream, options }, TxEffect::None));
            }
        };
        Ok((QueryOutput::Command { tag }, tx))
    }

    /// Point DataFusion's default schema at the first `search_path` entry that
    /// exists in the current catalog.
    pub(crate) fn apply_search_path(&mut self) {
        let catalog = self.ctx.catalog(&self.catalog);
        let chosen = self
            .settings
            .read()
            .expect("settings lock")
            .search_path()
            .into_iter()
            .map(|s| {
                if s == "$user" {
                    self.identity.user.clone()
                } else {
                    s
                }
            })
            .find(|s| {
                catalog
                    .as_ref()
                    .map(|c| c.schema(s).is_some())
                    .unwrap_or(false)
            })
            .unwrap_or_else(|| "public".to_owned());
        self.ctx
            .state_ref()
            .write()
            .config_mut()
            .options_mut()
            .catalog
            .default_schema = chosen;
    }
}

/// A one-shot stream of string rows (SHOW).
fn rows(schema: SchemaRef, rows: Vec<Vec<String>>) -> QueryOutput {
    let columns = (0..schema.fields().len())
        .map(|i| {
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r[i].as_str()),
            )) as datafusion::arrow::array::ArrayRef
        })
        .collect::<Vec<_>>();
    let batch = RecordBatch::try_new(schema.clone(), columns);
    let stream = stream::iter(vec![batch.map_err(Into::into)]);
    QueryOutput::Rows(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
}
