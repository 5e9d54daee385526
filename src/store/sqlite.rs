//! The SQLite engine: one writer thread for the request path's writes, batched into shared
//! commits (`group_commit`), and the WAL kept bounded (`wal`).
pub mod bookings;
pub mod group_commit;
pub mod wal;

use crate::db::Pool;
use group_commit::GroupCommit;

pub(super) struct Engine {
    pub(super) writer: GroupCommit,
}

impl Engine {
    /// Connections of its own: the group-commit writer's, so it never waits for a request's.
    pub(super) const CONNECTIONS: u32 = 1;

    pub(super) fn start(pool: &Pool) -> std::io::Result<Self> {
        Ok(Engine {
            writer: GroupCommit::start(pool.clone())?,
        })
    }
}
