//! The identity lifecycle alliance admins drive from a shell: suspending and reactivating
//! partners, rotating signing keys, renewing and revoking certificates, finance users, and the
//! registry reports. Every change is one write transaction with its audit entry, so it takes
//! effect on the very next request (the gateway reads the registry on every request).
pub mod certificates;
pub mod finance;
pub mod partners;
pub mod report;

use crate::db::DbError;
use crate::pki::PkiError;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Pki(#[from] PkiError),
}

impl From<diesel::result::Error> for LifecycleError {
    fn from(e: diesel::result::Error) -> Self {
        LifecycleError::Db(DbError::Query(e))
    }
}

/// Whether a command changed anything: re-running a command that is already in effect (say,
/// suspending a suspended partner) is not an error, and says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Done,
    AlreadyInEffect,
}

/// Moves `from` aside to `to` inside a bundle, if it exists. Never overwrites: when `to` is
/// taken, a timestamp is appended, so no key file is ever lost.
fn move_aside(from: &std::path::Path, to: &std::path::Path) -> Result<(), PkiError> {
    if !from.exists() {
        return Ok(());
    }
    let mut target = to.to_path_buf();
    if target.exists() {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%f");
        target = to.with_file_name(format!(
            "{}.{stamp}",
            to.file_name().and_then(|n| n.to_str()).unwrap_or("aside")
        ));
    }
    std::fs::rename(from, &target).map_err(|e| PkiError::io(from, e))
}
