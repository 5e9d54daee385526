//! Keeping the SQLite write-ahead log bounded.
//!
//! Why this is needed: a PASSIVE checkpoint copies the WAL's frames into the database file, but
//! it never rewinds the WAL. SQLite rewinds it only when a write starts at a moment when every
//! frame has been copied and no reader is still reading from the WAL. Under sustained writes that
//! moment never comes, so the file grew without bound: the record benchmark reached 3.8 GB in
//! 35 s. Every frame written past the file's end also made the kernel zero fresh pages, which
//! was a tenth of the gateway's time in the verify benchmark.
//!
//! What we do: a PASSIVE checkpoint every 100 ms, off the request path, concurrent with writers
//! ([`checkpoint_passive`]). When the WAL still holds more than [`RESTART_AFTER_FRAMES`] frames
//! after it, the group-commit writer runs a RESTART checkpoint between two batches
//! ([`checkpoint_restart`]). The PASSIVE passes have already copied most of the frames, so only
//! the last 100 ms' worth is left. The RESTART does not wait for readers ([`RESTART_WAIT_MS`]):
//! if one is still in the WAL it gives up until the next pass, so a long reader never stalls the
//! writers. After it, the next write starts again at the beginning of the WAL, and
//! `journal_size_limit` ([`WAL_SIZE_LIMIT_BYTES`]) truncates the file back to that size.
use crate::db::{DbConn, BUSY_TIMEOUT_MS};
use diesel::connection::SimpleConnection;
use diesel::sql_types::BigInt;
use diesel::RunQueryDsl;

pub use crate::db::WAL_SIZE_LIMIT_BYTES;

/// A RESTART checkpoint is asked for when a PASSIVE one leaves more frames than this in the
/// WAL: 32,768 frames of a 4 KiB page, about 128 MiB. Under light load the WAL rewinds on its
/// own and never gets there. Under sustained load a RESTART comes every few seconds rather than
/// every second: each one holds every writer for its two fsyncs, so fewer of them keep the
/// latency tail shorter.
pub const RESTART_AFTER_FRAMES: i64 = 32_768;
/// How long a RESTART checkpoint waits for readers to leave the WAL: not at all. Every writer
/// waits while it does, and a reader still in the WAL just means trying again 100 ms later.
pub const RESTART_WAIT_MS: u32 = 0;

/// What `PRAGMA wal_checkpoint` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::QueryableByName)]
pub struct WalState {
    /// 1 when the checkpoint could not finish (a writer or a reader was in the way).
    #[diesel(sql_type = BigInt)]
    pub busy: i64,
    /// Frames in the WAL (-1 when the database is not in WAL mode).
    #[diesel(sql_type = BigInt, column_name = log)]
    pub log_frames: i64,
    /// Frames of those copied into the database file.
    #[diesel(sql_type = BigInt, column_name = checkpointed)]
    pub checkpointed_frames: i64,
}

impl WalState {
    /// True when the WAL should be rewound by a RESTART checkpoint.
    pub fn wants_restart(&self) -> bool {
        self.log_frames > RESTART_AFTER_FRAMES
    }
}

/// Copies the WAL into the database file without waiting for anyone. `None` on PostgreSQL.
pub fn checkpoint_passive(conn: &mut DbConn) -> Result<Option<WalState>, diesel::result::Error> {
    match conn {
        DbConn::Sqlite(c) => Ok(Some(
            diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result::<WalState>(c)?,
        )),
        DbConn::Postgres(_) => Ok(None),
    }
}

/// Copies what is left of the WAL and waits (at most [`RESTART_WAIT_MS`]) until no reader uses
/// it, so that the next write rewinds it. Runs outside any transaction. `None` on PostgreSQL.
///
/// It holds the process's writer turn (`db::exclusive_write`) throughout: the other writers of
/// this process then wait on that turn, and go the moment it is over. Without it they waited
/// in SQLite's busy handler, whose growing sleeps (1, 2, 5, 10, 15 ms…) turned a 15 ms
/// checkpoint into a 33 ms wait.
pub fn checkpoint_restart(conn: &mut DbConn) -> Result<Option<WalState>, diesel::result::Error> {
    crate::db::exclusive_write(conn, |conn| {
        let DbConn::Sqlite(c) = conn else {
            return Ok(None);
        };
        c.batch_execute(&format!("PRAGMA busy_timeout = {RESTART_WAIT_MS}"))?;
        let state = diesel::sql_query("PRAGMA wal_checkpoint(RESTART)").get_result::<WalState>(c);
        // The connection goes back to the patient timeout whatever the checkpoint did.
        c.batch_execute(&format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}"))?;
        Ok(Some(state?))
    })
}
