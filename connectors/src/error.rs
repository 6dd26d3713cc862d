//! The connector layer's error type.

use thiserror::Error;

/// Why a catalog's options were refused or its source could not be read.
#[derive(Debug, Error)]
pub enum ConnectorError {
    /// An option has a bad value or is unknown. `key` is the dotted path inside
    /// the catalog's table (empty when the problem is the table as a whole).
    #[error("{}{message}", if key.is_empty() { String::new() } else { format!("{key}: ") })]
    InvalidOption { key: String, message: String },

    /// The source could not be reached or read while building the catalog.
    #[error("table `{table}`: {message}")]
    Table { table: String, message: String },

    /// A location or object store could not be set up (a bad or unsupported
    /// URL, S3 settings the store refuses), or a schema not registered.
    #[error("{0}")]
    Storage(String),

    /// A database source failed: it is down, refused the credentials, timed
    /// out, or rejected the statement. The message names the catalog.
    #[error("catalog `{catalog}`: {message}")]
    Source { catalog: String, message: String },
}

impl ConnectorError {
    pub(crate) fn option(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidOption {
            key: key.into(),
            message: redact(message.into()),
        }
    }

    /// A source failure, with the cause chain condensed to one line (and no
    /// secret: drivers may echo connection strings).
    pub(crate) fn source(catalog: &str, err: &(dyn std::error::Error + 'static)) -> Self {
        Self::Source {
            catalog: catalog.to_owned(),
            message: redact(condense(err)),
        }
    }

    pub(crate) fn table(table: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self::Table {
            table: table.into(),
            message: redact(message.to_string()),
        }
    }
}

fn redact(message: String) -> String {
    match crate::secrets::redact(&message) {
        std::borrow::Cow::Borrowed(_) => message,
        std::borrow::Cow::Owned(redacted) => redacted,
    }
}

/// One line from an error and its causes: drivers wrap errors in several
/// layers of advice text; users need the innermost facts.
fn condense(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        let line = text
            .lines()
            .map(str::trim)
            .filter(|l| {
                !l.is_empty()
                    && !l.starts_with("For details")
                    && !l.starts_with("Adjust ")
                    && !l.starts_with("Ensure ")
                    && !l.starts_with("Verify ")
            })
            .collect::<Vec<_>>()
            .join(" ");
        let line = line
            .trim_start_matches("External error: ")
            .trim_start_matches("Execution error: ")
            .to_owned();
        if !line.is_empty() && !parts.iter().any(|p| p.contains(&line)) {
            parts.retain(|p| !line.contains(p.as_str()));
            parts.push(line);
        }
        current = e.source();
    }
    parts.join(": ")
}
