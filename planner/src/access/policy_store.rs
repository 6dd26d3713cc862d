//! Where the policy changes made through meshgate (SQL `GRANT`/`REVOKE`,
//! the admin API) are kept: a policy file, or a store shared by several
//! gateways (the gateway's PostgreSQL store). Every change is saved as a
//! new version; a store refuses a version that another writer saved first,
//! so two replicas never overwrite each other's change.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::QueryResult;

/// A place policy versions are kept.
#[async_trait]
pub trait PolicyStore: Send + Sync + std::fmt::Debug {
    /// Keep `text` (a policy document) as version `version`. Fails with
    /// [`crate::QueryError::Conflict`] when that version is already kept.
    async fn save(&self, version: u64, text: &str) -> QueryResult<()>;

    /// Where, for logs (never a secret).
    fn describe(&self) -> String;
}

/// The policy file: written atomically (a temporary file renamed over it),
/// each version also kept in `<file>.history/`.
#[derive(Debug)]
pub struct PolicyFile(pub PathBuf);

#[async_trait]
impl PolicyStore for PolicyFile {
    async fn save(&self, version: u64, text: &str) -> QueryResult<()> {
        persist(&self.0, text, version)
            .map_err(|e| crate::QueryError::Internal(format!("writing {}: {e}", self.0.display())))
    }

    fn describe(&self) -> String {
        self.0.display().to_string()
    }
}

/// Write `text` to `file` atomically and keep a copy as version `version`.
fn persist(file: &Path, text: &str, version: u64) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "policy.toml".into());
    let history = dir.join(format!("{name}.history"));
    std::fs::create_dir_all(&history)?;
    std::fs::write(history.join(format!("{version:06}.toml")), text)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, file)
}
