//! From text to a [`Policy`]: parsing, the checks serde cannot make, and
//! the rule indexes evaluation uses.
//!
//! A policy is validated whole before it is used: any problem refuses the
//! document with a [`PolicyError`] naming the key (`grants[2].principals[0]`),
//! so a reload with a mistake leaves the previous policy in force rather than
//! half of the new one.

use thiserror::Error;

use crate::document::PolicyDocument;
use crate::impersonation;
use crate::index::RuleIndex;
use crate::product_editing;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PolicyError {
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
}

pub(crate) fn invalid(key: impl Into<String>, problem: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// A validated policy, ready to evaluate.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub(crate) doc: PolicyDocument,
    pub(crate) grants: RuleIndex,
    pub(crate) row_filters: RuleIndex,
    pub(crate) masks: RuleIndex,
}

impl Policy {
    /// Parse and validate a TOML policy document; errors name the key.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            invalid(
                "(syntax)",
                e.to_string().lines().next().unwrap_or_default().to_owned(),
            )
        })?;
        let doc: PolicyDocument = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let key = e.path().to_string();
                invalid(
                    key,
                    e.into_inner()
                        .to_string()
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })?;
        Self::new(doc)
    }

    /// Validate `doc` and index its rules.
    pub fn new(doc: PolicyDocument) -> Result<Self, PolicyError> {
        let check_principals = |key: &str, list: &[String]| -> Result<(), PolicyError> {
            for (i, p) in list.iter().enumerate() {
                let ok = p == "*"
                    || p.strip_prefix("user:").is_some_and(|u| !u.is_empty())
                    || p.strip_prefix("group:")
                        .is_some_and(|g| doc.groups.contains_key(g));
                if !ok {
                    return Err(invalid(
                        format!("{key}.principals[{i}]"),
                        format!(
                            "`{p}` is not `*`, `user:NAME` or `group:NAME` of a declared group"
                        ),
                    ));
                }
            }
            Ok(())
        };
        check_principals("admins", &doc.admins).map_err(|e| match e {
            PolicyError::Invalid { key, problem } => {
                invalid(key.replace("admins.principals", "admins"), problem)
            }
        })?;
        for (i, g) in doc.grants.iter().enumerate() {
            check_principals(&format!("grants[{i}]"), &g.principals)?;
            if g.privilege.eq_ignore_ascii_case("impersonate") {
                impersonation::validate(i, g, &doc)?;
                continue;
            }
            if g.privilege
                .eq_ignore_ascii_case(product_editing::EDIT_PRODUCT)
            {
                product_editing::validate(i, g)?;
                continue;
            }
            if !g.privilege.eq_ignore_ascii_case("select") {
                return Err(invalid(
                    format!("grants[{i}].privilege"),
                    "only `select`, `impersonate` and `edit_product` are supported",
                ));
            }
            if !g.targets.is_empty() {
                return Err(invalid(
                    format!("grants[{i}].targets"),
                    "only `impersonate` grants name targets",
                ));
            }
            if g.tables.is_empty() && g.tags.is_empty() {
                return Err(invalid(
                    format!("grants[{i}]"),
                    "names no `tables` and no `tags`",
                ));
            }
        }
        for (i, f) in doc.row_filters.iter().enumerate() {
            check_principals(&format!("row_filters[{i}]"), &f.principals)?;
            if f.filter.trim().is_empty() {
                return Err(invalid(format!("row_filters[{i}].filter"), "is empty"));
            }
        }
        for (i, m) in doc.masks.iter().enumerate() {
            check_principals(&format!("masks[{i}]"), &m.principals)?;
            if m.mask.trim().is_empty() {
                return Err(invalid(format!("masks[{i}].mask"), "is empty"));
            }
            match (m.column.trim().is_empty(), m.column_tags.is_empty()) {
                (true, true) => {
                    return Err(invalid(
                        format!("masks[{i}]"),
                        "names no `column` and no `column_tags`",
                    ))
                }
                (false, false) => {
                    return Err(invalid(
                        format!("masks[{i}]"),
                        "names both `column` and `column_tags`: a rule masks one column, or every column with a tag",
                    ))
                }
                (false, true) if m.tables.is_empty() && m.tags.is_empty() => {
                    return Err(invalid(
                        format!("masks[{i}]"),
                        "names no `tables` and no `tags` for its `column`",
                    ))
                }
                _ => {}
            }
        }
        let grants = RuleIndex::build(doc.grants.iter().map(|r| {
            (
                r.principals.as_slice(),
                r.tables.as_slice(),
                r.tags.as_slice(),
            )
        }));
        let row_filters = RuleIndex::build(doc.row_filters.iter().map(|r| {
            (
                r.principals.as_slice(),
                r.tables.as_slice(),
                r.tags.as_slice(),
            )
        }));
        // A `column_tags` rule may concern any table: index it by its
        // column tags, which sends it to every table's candidates.
        let masks = RuleIndex::build(doc.masks.iter().map(|r| {
            let tags = if r.tables.is_empty() && r.tags.is_empty() {
                r.column_tags.as_slice()
            } else {
                r.tags.as_slice()
            };
            (r.principals.as_slice(), r.tables.as_slice(), tags)
        }));
        Ok(Self {
            doc,
            grants,
            row_filters,
            masks,
        })
    }

    /// The document this policy was built from.
    pub fn document(&self) -> &PolicyDocument {
        &self.doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_documents_name_the_key() {
        let err = Policy::from_toml(
            "[[grants]]\neffect = \"allow\"\nprincipals = [\"group:ghosts\"]\ntables = [\"*\"]",
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("grants[0].principals[0]:"),
            "{err}"
        );
        let err = Policy::from_toml(
            "[[grants]]\neffect = \"maybe\"\nprincipals = [\"*\"]\ntables = [\"*\"]",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("grants[0].effect:"), "{err}");
        let err =
            Policy::from_toml("[[grants]]\neffect = \"allow\"\nprincipals = [\"*\"]").unwrap_err();
        assert!(err.to_string().contains("names no `tables`"), "{err}");
        let err =
            Policy::from_toml("[[masks]]\nprincipals = [\"*\"]\ncolumn = \"a\"\nmask = \" \"")
                .unwrap_err();
        assert!(err.to_string().starts_with("masks[0].mask"), "{err}");
    }
}
