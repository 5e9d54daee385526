//! The tables: one portable diesel schema over SQLite (default) or PostgreSQL (production),
//! one file per table. Where a new query goes and how to write it: `src/db/README.md`.

/// Runs `$body` with `$c` bound to the concrete connection (SQLite or PostgreSQL) instead of
/// the multi-backend one. Why: a query on the multi-backend connection has no static query id,
/// so diesel renders its SQL text on every call just to look up the prepared statement (a tenth
/// of a verify request's CPU); on the concrete connection the lookup is by type. The body is
/// compiled once per backend, so it must be portable diesel DSL. Used on the hot paths.
macro_rules! concrete {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite($c) => $body,
            $crate::db::DbConn::Postgres($c) => $body,
        }
    };
}

pub mod alliance;
pub mod audit_log;
pub mod business_days;
pub mod certificates;
pub mod chain_links;
pub mod finance_users;
pub mod gateway_keys;
pub mod idempotency_keys;
pub mod ledger;
pub mod member_refs;
pub mod member_tokens;
pub mod members;
pub mod nonces;
pub mod offer_versions;
pub mod partner_chains;
pub mod partners;
pub mod prepared;
pub mod reconciliation_uploads;
pub mod registry_generation;
pub mod reversals;
pub mod schema;
pub mod settlement_runs;
pub mod signing_keys;
pub mod transactions;

use crate::config::DatabaseUrl;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::{self, ManageConnection};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::time::Duration;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConn = r2d2::PooledConnection<Manager>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database connection: {0}")]
    Connection(#[from] diesel::ConnectionError),
    #[error("database pool: {0}")]
    Pool(#[from] r2d2::PoolError),
    #[error("migrations: {0}")]
    Migration(String),
    #[error("stored data is inconsistent: {0}")]
    Invariant(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The store had more work queued than it takes on (`store::StoreError::Overloaded`):
    /// nothing was done, and the caller may retry shortly.
    #[error("the database work queue is full")]
    Overloaded,
    /// A registry lookup made without a database ([`crate::registry::CacheOnly`]) missed the
    /// cache. Never answered: the checks are made again on a database thread.
    #[error("not in the registry cache")]
    NotCached,
}

/// Opens connections for the backend the URL named; never guesses (diesel's multi-connection
/// `establish` would open any non-Postgres string as a SQLite file).
#[derive(Debug, Clone)]
pub struct Manager {
    url: DatabaseUrl,
}

/// Per-connection SQLite settings: WAL so readers never block the writer, a busy timeout so
/// concurrent writers wait instead of failing, and foreign keys on.
/// The busy timeout comes first so that switching to WAL waits for other new connections.
/// NORMAL synchronisation is durable across application crashes in WAL mode (an OS crash may
/// lose the last transactions, never corrupt the file). (A memory map was tried and dropped:
/// the file grows with every nonce, and remapping cost more than it saved.)
/// Request connections never checkpoint (`wal_autocheckpoint = 0`): a checkpoint every 1000
/// WAL pages ran inside some unlucky request's nonce insert (a fifth of that insert's cost).
/// `wal::checkpoint_passive` runs ten times a second instead, off the request path (why that
/// often: `config::JobIntervals::checkpoint_wal_ms`).
/// Savepoints (one per request in a group-commit batch) keep their page copies in memory
/// (`temp_store = MEMORY`) rather than in a temporary file: that file's writes were a tenth of
/// the writer's time. (The group-commit writer's connection gets a larger page cache, see
/// `group_commit::WRITER_CACHE_PRAGMA`; the others keep the default 2 MiB, because every write
/// by another connection makes SQLite throw a connection's whole cache away.)
/// The WAL is kept bounded by `wal` (`journal_size_limit` is the size it is cut back to).
fn sqlite_pragmas() -> String {
    format!(
        "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
         PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0; \
         PRAGMA temp_store = MEMORY; PRAGMA journal_size_limit = {};",
        BUSY_TIMEOUT_MS, WAL_SIZE_LIMIT_BYTES
    )
}

/// The WAL's size on disk after it has been rewound (`journal_size_limit`): 128 MiB, the size
/// it reaches between two RESTART checkpoints (`store::sqlite::wal`). Keeping a file this size
/// (rather than truncating it to nothing) spares the kernel from zeroing fresh pages on every
/// rewind.
pub const WAL_SIZE_LIMIT_BYTES: i64 = 128 * 1024 * 1024;

/// How long a SQLite statement waits for a lock before it fails with "database is locked".
pub const BUSY_TIMEOUT_MS: u32 = 10_000;

impl Manager {
    pub fn new(url: DatabaseUrl) -> Self {
        Self { url }
    }

    pub fn connect(&self) -> Result<DbConn, diesel::ConnectionError> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                create_private_file(path).map_err(|e| {
                    diesel::ConnectionError::BadConnection(format!(
                        "cannot create {}: {e}",
                        path.display()
                    ))
                })?;
                let path = path.to_string_lossy();
                let mut conn = SqliteConnection::establish(&path)?;
                conn.batch_execute(&sqlite_pragmas())
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConn::Sqlite(conn))
            }
            DatabaseUrl::Postgres(url) => Ok(DbConn::Postgres(PgConnection::establish(url)?)),
        }
    }
}

/// Creates the SQLite file (mode 0600, in a directory of mode 0700) before SQLite opens it, if
/// it is not there yet. Why: SQLite would create it 0644 less the umask, and it holds card
/// numbers and every partner's records; its `-wal` and `-shm` files take the database file's
/// mode, so they are private too.
fn create_private_file(path: &std::path::Path) -> Result<(), crate::pki::PkiError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::pki::files::create_dir_all(dir)?;
    }
    match crate::pki::files::create_new(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(crate::pki::PkiError::io(path, e)),
    }
}

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConn, r2d2::Error> {
        Manager::connect(self).map_err(r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    /// A connection still inside a transaction (a job that panicked half way) is dropped
    /// rather than handed to the next user with someone else's transaction open.
    fn has_broken(&self, conn: &mut DbConn) -> bool {
        in_transaction(conn)
    }
}

/// Builds the pool (connections are opened lazily, up to `max_size`).
pub fn pool(url: &DatabaseUrl, max_size: u32) -> Result<Pool, DbError> {
    let pool = r2d2::Pool::builder()
        .max_size(max_size)
        .connection_timeout(Duration::from_secs(10))
        // A broken connection fails its query and is replaced; a `SELECT 1` before every
        // checkout would cost a round trip on each request.
        .test_on_check_out(false)
        .build(Manager::new(url.clone()))?;
    Ok(pool)
}

/// Applies the embedded migrations of the connection's backend.
pub fn migrate(conn: &mut DbConn) -> Result<usize, DbError> {
    let applied = match conn {
        DbConn::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map_err(|e| DbError::Migration(e.to_string()))?
            .len(),
        DbConn::Postgres(c) => c
            .run_pending_migrations(POSTGRES_MIGRATIONS)
            .map_err(|e| DbError::Migration(e.to_string()))?
            .len(),
    };
    Ok(applied)
}

/// Rows an upkeep DELETE removes per write.
pub const PRUNE_BATCH: i64 = 2_000;
/// Batches per pruning call (4 million rows).
pub const PRUNE_MAX_BATCHES: usize = 2_000;

/// Deletes expired rows in batches of [`PRUNE_BATCH`], each its own short write under the
/// process's writer turn, until a batch comes up short; at most [`PRUNE_MAX_BATCHES`] per call,
/// and the next call takes the rest. Why: at 2,500 sales/s a minute's expired nonces and stored
/// answers are 150,000 rows each, and one DELETE of them all would hold SQLite's only writer
/// (and every sale behind it) for as long as it took.
///
/// `delete` is a fixed text (see [`prepared`]) that deletes at most `$2` rows expired before
/// the cut-off `$1`.
pub fn prune_in_batches(
    conn: &mut DbConn,
    delete: &'static str,
    cut_off: chrono::NaiveDateTime,
) -> diesel::QueryResult<usize> {
    use diesel::sql_types::{BigInt, Timestamp};
    use diesel::RunQueryDsl;
    let batch = prepared::prepared(delete)
        .bind::<Timestamp, _>(cut_off)
        .bind::<BigInt, _>(PRUNE_BATCH);
    let mut total = 0;
    for _ in 0..PRUNE_MAX_BATCHES {
        let deleted = exclusive_write(conn, |conn| concrete!(conn, |c| batch.execute(c)))?;
        total += deleted;
        if i64::try_from(deleted).is_ok_and(|d| d < PRUNE_BATCH) {
            break;
        }
    }
    Ok(total)
}

/// SQLite allows one writer at a time; a second one waits in SQLite's busy handler, which sleeps
/// in steps of milliseconds. Writers of this process queue on this lock instead, which hands
/// over in microseconds. (Other processes sharing the file still meet the busy timeout.)
static SQLITE_WRITER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` holding this process's SQLite writer lock (no lock on PostgreSQL).
pub fn exclusive_write<T>(conn: &mut DbConn, f: impl FnOnce(&mut DbConn) -> T) -> T {
    match conn {
        DbConn::Sqlite(_) => {
            let _guard = SQLITE_WRITER
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            f(conn)
        }
        DbConn::Postgres(_) => f(conn),
    }
}

/// True while `conn` has a transaction open.
pub fn in_transaction(conn: &mut DbConn) -> bool {
    !matches!(
        <DbConn as Connection>::TransactionManager::transaction_manager_status_mut(conn)
            .transaction_depth(),
        Ok(None)
    )
}

/// Runs `f` in a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so the write lock is
/// taken up front and two writers never deadlock upgrading a read lock. Inside a transaction
/// that is already open (a group-commit batch, see `group_commit`) it is a savepoint: `f`'s
/// changes are rolled back alone if it fails.
pub fn write_tx<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    if in_transaction(conn) {
        return conn.transaction(f);
    }
    exclusive_write(conn, |conn| write_tx_unlocked(conn, f))
}

fn write_tx_unlocked<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    match conn {
        DbConn::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?,
        DbConn::Postgres(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    match f(conn) {
        Ok(value) => {
            <DbConn as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => {
            // The rollback error (if any) is less useful than the error that caused it.
            let _ = <DbConn as Connection>::TransactionManager::rollback_transaction(conn);
            Err(e)
        }
    }
}

/// True when the error is a unique-constraint violation, on either backend.
pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// Takes a lock that serialises writers of one kind across instances. SQLite's immediate
/// transaction already serialises every writer; PostgreSQL needs an advisory lock.
pub fn serialise(conn: &mut DbConn, lock_key: i64) -> Result<(), diesel::result::Error> {
    advisory(conn, "SELECT pg_advisory_xact_lock($1)", lock_key)
}

/// Runs one of PostgreSQL's advisory-lock statements `sql` for `lock_key`; nothing on SQLite.
fn advisory(conn: &mut DbConn, sql: &'static str, lock_key: i64) -> diesel::QueryResult<()> {
    if let DbConn::Postgres(c) = conn {
        prepared::prepared(sql)
            .bind::<diesel::sql_types::BigInt, _>(lock_key)
            .execute(c)?;
    }
    Ok(())
}

use diesel::RunQueryDsl;

/// Well-known advisory lock keys.
pub mod locks {
    pub const AUDIT_LOG: i64 = 0x414c_4c49_0001;
    /// Held shared by every booking and exclusively by the closing of a day, so a record is
    /// never booked into a day while it closes.
    pub const BOOKING: i64 = 0x414c_4c49_0002;

    /// One lock per partner's hash chain. (A row lock on the chain head, taken by an upsert,
    /// was tried: with a dozen waiters every commit woke them all to fight over the row, and
    /// bookings ran a quarter slower than behind this lock's orderly queue.)
    pub fn partner_chain(partner: &str) -> i64 {
        keyed(0x0003, partner.as_bytes())
    }

    /// One lock per member's points balance.
    pub fn member(member_id: i64) -> i64 {
        keyed(0x0004, &member_id.to_be_bytes())
    }

    /// One lock per partner record id (a partner_txn_id, or a sale being reversed).
    pub fn partner_record(partner: &str, id: &str) -> i64 {
        keyed(0x0006, format!("{partner}\0{id}").as_bytes())
    }

    /// One lock per (partner, Idempotency-Key), so a repeat waits for the first.
    pub fn idempotency(partner: &str, key: &str) -> i64 {
        keyed(0x0005, format!("{partner}\0{key}").as_bytes())
    }

    /// A 64-bit key: the kind in the top 16 bits, 48 bits of SHA-256 of the name below.
    fn keyed(kind: i64, name: &[u8]) -> i64 {
        let d = ring::digest::digest(&ring::digest::SHA256, name);
        let mut low = [0u8; 8];
        low[2..].copy_from_slice(&d.as_ref()[..6]);
        (kind << 48) | i64::from_be_bytes(low)
    }
}

/// Takes a shared lock and then an exclusive one in a single statement (PostgreSQL; SQLite's
/// single writer already serialises): one round trip instead of two on the sale path.
/// PostgreSQL evaluates the select list left to right, so the order is the one given.
pub fn serialise_shared_then(
    conn: &mut DbConn,
    shared_key: i64,
    exclusive_key: i64,
) -> Result<(), diesel::result::Error> {
    if let DbConn::Postgres(c) = conn {
        prepared::prepared("SELECT pg_advisory_xact_lock_shared($1), pg_advisory_xact_lock($2)")
            .bind::<diesel::sql_types::BigInt, _>(shared_key)
            .bind::<diesel::sql_types::BigInt, _>(exclusive_key)
            .execute(c)?;
    }
    Ok(())
}

/// A shared advisory lock for this transaction (PostgreSQL); SQLite's single writer already
/// serialises. Several holders at once, none while an exclusive holder has it.
pub fn serialise_shared(conn: &mut DbConn, lock_key: i64) -> Result<(), diesel::result::Error> {
    advisory(conn, "SELECT pg_advisory_xact_lock_shared($1)", lock_key)
}

/// `t` as stored: UTC, truncated to microseconds, so values read back compare equal on both
/// backends.
pub fn micros(t: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDateTime {
    let t = t.naive_utc();
    chrono::DurationRound::duration_trunc(t, chrono::TimeDelta::microseconds(1)).unwrap_or(t)
}

/// The wall clock's time as stored ([`micros`]), for the admin commands' own records. A use
/// case on the request path takes its time from the request (`clock`), never from here.
pub fn now_utc() -> chrono::NaiveDateTime {
    micros(chrono::Utc::now())
}
