//! The policy document as written in TOML: the serde types of every section.
//!
//! These types only describe the text; [`Policy::new`](crate::Policy::new)
//! checks what serde cannot (principals name declared groups, a grant's
//! privilege, non-empty expressions). Unknown keys are errors everywhere, so
//! a misspelt key is refused instead of silently widening access.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

/// The policy document (TOML).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// Raised by one on every change made through meshgate (SQL or the admin
    /// API); an apply that names an older version is refused.
    #[serde(default)]
    pub version: u64,
    /// group → members (user names).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub users: BTreeMap<String, UserEntry>,
    /// Tags on tables: pattern → tags (e.g. `"members.public.*" = ["pii"]`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub row_filters: Vec<RowFilterRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masks: Vec<MaskRule>,
    /// Principals that administer meshgate: they change the policy, read the
    /// audit log and call the admin procedures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admins: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub effect: Effect,
    /// `user:NAME`, `group:NAME` or `*`.
    pub principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// For `allow`: only these columns are readable; the others read as NULL.
    /// Empty means every column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// `select` (on `tables`/`tags`), or `impersonate` (on `targets`).
    #[serde(default = "select")]
    pub privilege: String,
    /// For `privilege = "impersonate"`: whom the principals may act as
    /// (`user:NAME`, `group:NAME`; see [`Policy::may_impersonate`](crate::Policy::may_impersonate)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
}

fn select() -> String {
    "select".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RowFilterRule {
    pub principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// A SQL boolean expression over the table's columns.
    pub filter: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaskRule {
    pub principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The column masked. Either `column` or `column_tags`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub column: String,
    /// Mask every column carrying one of these tags (from data product
    /// descriptors), in the tables `tables`/`tags` name, or in every table
    /// when they name none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub column_tags: Vec<String>,
    /// A SQL expression replacing the column's value (may use the column;
    /// for `column_tags`, usually a constant such as `NULL`), cast to the
    /// column's type.
    pub mask: String,
}
