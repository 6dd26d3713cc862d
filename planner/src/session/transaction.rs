//! The transaction-block state machine of a session, as PostgreSQL clients
//! see it: meshgate is read-only, so a block only groups statements, but a
//! failed block refuses everything until it ends, `COMMIT` of a failed block
//! rolls back, and misplaced `BEGIN`/`COMMIT` draw PostgreSQL's warnings.
//!
//! The state is passed in and returned by the pipeline rather than kept in
//! the session: the front end stores it where its protocol reports it (the
//! pgwire ReadyForQuery status), and also knows of failures the planner
//! never sees (a connection-level error, a stream failing mid-way).

use super::prepared::{Prepared, TxEffect};
use crate::{QueryError, QueryResult};

/// Where a session stands with respect to a transaction block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TransactionState {
    /// Not in a block: each statement stands alone.
    #[default]
    Idle,
    /// Inside `BEGIN ... COMMIT`.
    InBlock,
    /// Inside a block in which a statement failed: only statements that
    /// end the block (or roll back to a savepoint) run.
    Failed,
}

/// A warning to show the client next to a statement's result (a pgwire
/// NoticeResponse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub sqlstate: &'static str,
    pub message: String,
}

impl TransactionState {
    /// Refuse `prepared` when a failed block accepts only its end.
    pub(crate) fn admit(self, prepared: &Prepared) -> QueryResult<()> {
        if self == TransactionState::Failed && !prepared.ends_transaction() {
            return Err(QueryError::TransactionAborted);
        }
        Ok(())
    }

    /// The state after a statement with `effect` succeeded, and the warning
    /// PostgreSQL gives for a misplaced `BEGIN` or `COMMIT`.
    pub(crate) fn after(self, effect: TxEffect) -> (TransactionState, Option<Notice>) {
        use TransactionState::*;
        match (self, effect) {
            (InBlock, TxEffect::Begin) => (
                InBlock,
                Some(Notice {
                    sqlstate: "25001",
                    message: "there is already a transaction in progress".into(),
                }),
            ),
            (_, TxEffect::Begin) => (InBlock, None),
            (Idle, TxEffect::End) => (
                Idle,
                Some(Notice {
                    sqlstate: "25P01",
                    message: "there is no transaction in progress".into(),
                }),
            ),
            (_, TxEffect::End) => (Idle, None),
            (Failed, TxEffect::Recover) => (InBlock, None),
            (state, _) => (state, None),
        }
    }

    /// The state after a statement failed.
    pub fn failed(self) -> TransactionState {
        match self {
            TransactionState::Idle => TransactionState::Idle,
            _ => TransactionState::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::prepared::SessionCommand;
    use TransactionState::*;

    fn command(command: SessionCommand) -> Prepared {
        Prepared::Command {
            sql: String::new(),
            command,
            tables: vec![],
        }
    }

    #[test]
    fn a_block_begins_and_ends() {
        assert_eq!(Idle.after(TxEffect::Begin), (InBlock, None));
        assert_eq!(InBlock.after(TxEffect::None), (InBlock, None));
        assert_eq!(InBlock.after(TxEffect::End), (Idle, None));
    }

    #[test]
    fn misplaced_begin_and_commit_warn_like_postgresql() {
        let (state, notice) = InBlock.after(TxEffect::Begin);
        assert_eq!(state, InBlock);
        assert_eq!(notice.unwrap().sqlstate, "25001");
        let (state, notice) = Idle.after(TxEffect::End);
        assert_eq!(state, Idle);
        assert_eq!(notice.unwrap().sqlstate, "25P01");
    }

    #[test]
    fn a_failure_poisons_a_block_until_it_ends() {
        assert_eq!(Idle.failed(), Idle);
        assert_eq!(InBlock.failed(), Failed);
        let show = command(SessionCommand::Show("search_path".into()));
        assert!(matches!(
            Failed.admit(&show),
            Err(QueryError::TransactionAborted)
        ));
        assert!(InBlock.admit(&show).is_ok());
        assert!(Failed.admit(&command(SessionCommand::Rollback)).is_ok());
        assert!(Failed
            .admit(&command(SessionCommand::RollbackToSavepoint("s".into())))
            .is_ok());
        assert_eq!(Failed.after(TxEffect::Recover), (InBlock, None));
        assert_eq!(Failed.after(TxEffect::End), (Idle, None));
    }
}
