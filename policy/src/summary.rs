//! The policy as one line per rule, for listings (`meshgate policy list`).

use crate::document::{Effect, PolicyDocument};

/// One line per rule, for listings (`meshgate policy list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSummary {
    pub kind: &'static str,
    pub index: usize,
    pub summary: String,
}

impl PolicyDocument {
    /// Every role (by name), then grants, row filters, masks and admins (in
    /// policy order); `index` is the entry's position within its kind.
    pub fn rule_summaries(&self) -> Vec<RuleSummary> {
        let who = |principals: &[String], except: &[String]| {
            let mut s = principals.join(", ");
            if !except.is_empty() {
                s.push_str(&format!(" except {}", except.join(", ")));
            }
            s
        };
        let what = |tables: &[String], tags: &[String]| {
            let mut parts = tables.to_vec();
            parts.extend(tags.iter().map(|t| format!("tag {t}")));
            parts.join(", ")
        };
        let mut out = Vec::new();
        for (i, (role, members)) in self.groups.iter().enumerate() {
            out.push(RuleSummary {
                kind: "roles",
                index: i,
                summary: format!("{role}: {}", members.join(", ")),
            });
        }
        for (i, g) in self.grants.iter().enumerate() {
            let effect = match g.effect {
                Effect::Allow => "allow",
                Effect::Deny => "deny",
            };
            if g.privilege.eq_ignore_ascii_case("edit_product") {
                out.push(RuleSummary {
                    kind: "grants",
                    index: i,
                    summary: format!(
                        "{effect} editing the products of {} to {}",
                        g.tables.join(", "),
                        who(&g.principals, &g.except)
                    ),
                });
                continue;
            }
            if g.privilege.eq_ignore_ascii_case("impersonate") {
                out.push(RuleSummary {
                    kind: "grants",
                    index: i,
                    summary: format!(
                        "{effect} impersonating {} to {}",
                        g.targets.join(", "),
                        who(&g.principals, &g.except)
                    ),
                });
                continue;
            }
            let columns = if g.columns.is_empty() {
                String::new()
            } else {
                format!(" ({})", g.columns.join(", "))
            };
            out.push(RuleSummary {
                kind: "grants",
                index: i,
                summary: format!(
                    "{effect} select{columns} on {} to {}",
                    what(&g.tables, &g.tags),
                    who(&g.principals, &g.except)
                ),
            });
        }
        for (i, f) in self.row_filters.iter().enumerate() {
            out.push(RuleSummary {
                kind: "row_filters",
                index: i,
                summary: format!(
                    "rows of {} for {} where {}",
                    what(&f.tables, &f.tags),
                    who(&f.principals, &f.except),
                    f.filter
                ),
            });
        }
        for (i, m) in self.masks.iter().enumerate() {
            out.push(RuleSummary {
                kind: "masks",
                index: i,
                summary: format!(
                    "{} of {} for {} reads as {}",
                    if m.column_tags.is_empty() {
                        m.column.clone()
                    } else {
                        format!("columns tagged {}", m.column_tags.join(", "))
                    },
                    if m.tables.is_empty() && m.tags.is_empty() {
                        "any table".to_owned()
                    } else {
                        what(&m.tables, &m.tags)
                    },
                    who(&m.principals, &m.except),
                    m.mask
                ),
            });
        }
        for (i, a) in self.admins.iter().enumerate() {
            out.push(RuleSummary {
                kind: "admins",
                index: i,
                summary: a.clone(),
            });
        }
        out
    }
}
