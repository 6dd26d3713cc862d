//! What every run of one prepared statement works out the same way, kept
//! from its first run: a point lookup executed thousands of times a second
//! should not redo per run what its text and plan already decide.
//!
//! Shared by the statement's clones (like its [`PlanCache`]); a statement
//! planned again (new policy, new catalogs) starts with an empty memo.
//! Each entry is stored with what it was worked out from and only used
//! when that still holds.
//!
//! [`PlanCache`]: crate::plan_cache::PlanCache

use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default)]
pub struct RunMemo(Arc<Mutex<Memo>>);

#[derive(Debug, Default)]
struct Memo {
    /// The text the running-query tables show (see
    /// [`crate::runtime::sql_text::shown_sql`]), for this statement text
    /// with or without its literals hidden.
    shown: Option<Shown>,
    /// The result cache never keeps this statement's result when its
    /// unqualified names resolve in this default catalog (see
    /// `ResultCache::candidate`: a function of the plan and of the cache's
    /// settings, fixed for the server's life).
    never_kept_under: Option<String>,
    /// The plan has `$n` placeholders (a function of the plan alone).
    has_parameters: Option<bool>,
}

#[derive(Debug)]
struct Shown {
    sql: String,
    hide_literals: bool,
    text: String,
}

impl RunMemo {
    /// Whether the statement's plan has placeholders, worked out by `make`
    /// the first time.
    pub(crate) fn has_parameters(&self, make: impl FnOnce() -> bool) -> bool {
        let mut memo = self.0.lock().expect("run memo lock");
        *memo.has_parameters.get_or_insert_with(make)
    }

    /// The shown text of `sql`, made by `make` the first time.
    pub(crate) fn shown_sql(
        &self,
        sql: &str,
        hide_literals: bool,
        make: impl FnOnce() -> String,
    ) -> String {
        let mut memo = self.0.lock().expect("run memo lock");
        match &memo.shown {
            Some(shown) if shown.hide_literals == hide_literals && shown.sql == sql => {
                shown.text.clone()
            }
            _ => {
                let text = make();
                memo.shown = Some(Shown {
                    sql: sql.to_owned(),
                    hide_literals,
                    text: text.clone(),
                });
                text
            }
        }
    }

    /// Whether the result cache was found never to keep this statement's
    /// result under `default_catalog`.
    pub(crate) fn never_kept(&self, default_catalog: &str) -> bool {
        let memo = self.0.lock().expect("run memo lock");
        memo.never_kept_under.as_deref() == Some(default_catalog)
    }

    pub(crate) fn set_never_kept(&self, default_catalog: &str) {
        self.0.lock().expect("run memo lock").never_kept_under = Some(default_catalog.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shown_text_is_made_once_per_text_and_literal_setting() {
        let memo = RunMemo::default();
        let made = std::cell::Cell::new(0);
        let make = |text: &str| {
            made.set(made.get() + 1);
            text.to_owned()
        };
        assert_eq!(memo.shown_sql("SELECT 1", false, || make("a")), "a");
        assert_eq!(memo.shown_sql("SELECT 1", false, || make("b")), "a");
        assert_eq!(made.get(), 1);
        // Another setting or another text (a clone recorded under the
        // text its client sent) is made again.
        assert_eq!(memo.shown_sql("SELECT 1", true, || make("c")), "c");
        assert_eq!(memo.shown_sql("SELECT 2", true, || make("d")), "d");
        assert_eq!(made.get(), 3);
    }

    #[test]
    fn never_kept_holds_only_for_its_default_catalog() {
        let memo = RunMemo::default();
        assert!(!memo.never_kept("sales"));
        memo.set_never_kept("sales");
        assert!(memo.never_kept("sales"));
        assert!(!memo.never_kept("hr"));
        // Clones share what was learnt.
        assert!(memo.clone().never_kept("sales"));
    }
}
