//! The connector layer's error type.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConnectorError {
    /// An option has a bad value or is unknown. `key` is the dotted path inside
    /// the catalog's table (empty when the problem is the table as a whole).
    #[error("{}{message}", if key.is_empty() { String::new() } else { format!("{key}: ") })]
    InvalidOption { key: String, message: String },

    /// The source could not be reached or read while building the catalog.
    #[error("table `{table}`: {message}")]
    Table { table: String, message: String },

    #[error("{0}")]
    Storage(String),
}

impl ConnectorError {
    pub(crate) fn option(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidOption {
            key: key.into(),
            message: message.into(),
        }
    }

    pub(crate) fn table(table: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self::Table {
            table: table.into(),
            message: message.to_string(),
        }
    }
}
