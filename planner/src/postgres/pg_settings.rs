//! `pg_catalog.pg_settings`: the session's settings, as `SHOW ALL` shows
//! them (the parameters meshgate keeps, with their current values), in
//! PostgreSQL's columns. JDBC drivers read fixed parameters from it
//! (pgJDBC asks for `max_index_keys` before listing foreign keys).

use std::sync::{Arc, RwLock};

use datafusion::arrow::array::{ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::SendableRecordBatchStream;

use crate::session::settings::SessionSettings;

/// The table over the session's `settings`, read when it is scanned.
pub(super) fn pg_settings(
    settings: Arc<RwLock<SessionSettings>>,
) -> datafusion::error::Result<StreamingTable> {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let schema = Arc::new(Schema::new(vec![
        text("name"),
        text("setting"),
        text("unit"),
        text("category"),
        text("short_desc"),
        text("extra_desc"),
        text("context"),
        text("vartype"),
        text("source"),
        text("min_val"),
        text("max_val"),
        text("enumvals"),
        text("boot_val"),
        text("reset_val"),
        text("sourcefile"),
        Field::new("sourceline", DataType::Int32, true),
        Field::new("pending_restart", DataType::Boolean, true),
    ]));
    let partition = Settings {
        schema: schema.clone(),
        settings,
    };
    StreamingTable::try_new(schema, vec![Arc::new(partition)])
}

/// (name, value, description), as [`SessionSettings::all`] lists them.
type Setting = (String, String, String);

#[derive(Debug)]
struct Settings {
    schema: SchemaRef,
    settings: Arc<RwLock<SessionSettings>>,
}

impl PartitionStream for Settings {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let current = self.settings.read().expect("settings lock").clone();
        let defaults = SessionSettings::default();
        let rows = current.all();
        let column =
            |values: Vec<Option<String>>| -> ArrayRef { Arc::new(StringArray::from(values)) };
        let each = |f: &dyn Fn(&Setting) -> Option<String>| column(rows.iter().map(f).collect());
        let none = || column(vec![None; rows.len()]);
        let reset =
            |(name, _, _): &(String, String, String)| defaults.get(name).ok().map(str::to_owned);
        let columns: Vec<ArrayRef> = vec![
            each(&|(name, _, _)| Some(name.clone())),
            each(&|(_, value, _)| Some(value.clone())),
            none(),
            none(),
            each(&|(_, _, description)| Some(description.clone())),
            none(),
            each(&|(name, _, _)| {
                Some(
                    if SessionSettings::is_read_only(name) {
                        "internal"
                    } else {
                        "user"
                    }
                    .into(),
                )
            }),
            each(&|_| Some("string".into())),
            each(&|row| {
                Some(
                    if reset(row).as_deref() == Some(row.1.as_str()) {
                        "default"
                    } else {
                        "session"
                    }
                    .into(),
                )
            }),
            none(),
            none(),
            none(),
            each(&reset),
            each(&reset),
            none(),
            Arc::new(Int32Array::from(vec![None; rows.len()])),
            Arc::new(BooleanArray::from(vec![Some(false); rows.len()])),
        ];
        let schema = self.schema.clone();
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(Into::into);
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(async move { batch }),
        ))
    }
}
