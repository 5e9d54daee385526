//! The storage engine: one [`Store`] per gateway, built once for the backend the database URL
//! names, owning everything that differs between SQLite and PostgreSQL at run time — the
//! connection pool, the threads that run database work, SQLite's group-commit writer and WAL
//! checkpoints, PostgreSQL's sale batchers, nonce claimers and planner statistics.
//!
//! What the rest of the gateway asks of it, whatever the backend:
//! - [`Store::read`]: work on a database thread, with a connection of the pool;
//! - [`Store::write`]: a request's write transaction (on SQLite in the writer's next
//!   group-commit batch, on PostgreSQL a transaction of its own);
//! - [`Store::claim_nonce`]: a signed request's nonce, alone or with others';
//! - [`Store::book_sale`]: a sale, alone or (PostgreSQL) batched with others ([`SaleJob`]);
//! - the upkeep the jobs run: [`Store::checkpoint_wal`], [`Store::refresh_planner_stats`].
//!
//! Nothing outside `store/` and `db/` names a backend. The tables and their queries are in
//! `db/` (see `db/README.md` for where a new query goes); the SQL that only one backend speaks
//! is in the table's own file or here, in `sqlite/` and `postgres/`.
pub mod bookings;
pub mod executor;
pub mod postgres;
pub mod sale;
pub mod sqlite;

use crate::config::DatabaseUrl;
use crate::db::nonces::{NewNonce, Nonce};
use crate::db::{DbConn, DbError, Pool};
use executor::Executor;
use sale::SaleRows;
use std::sync::Arc;

pub use executor::StoreError;
pub use postgres::nonce_batch::NonceClaim;
pub use sqlite::group_commit::DbFailure;
use sqlite::group_commit::Guard;

/// Counts a database or batching thread's panic: the work it was doing is answered 500 and
/// rolled back (its connection, left in a transaction, is dropped by the pool), and the thread
/// goes on with the next (`alliance_worker_panics_total`; alert on any, it is a bug).
pub fn record_worker_panic(pool: &'static str) {
    metrics::counter!("alliance_worker_panics_total", "pool" => pool).increment(1);
    tracing::error!(
        worker.pool = pool,
        "a database worker's job panicked; the worker goes on"
    );
}

/// A sale for [`Store::book_sale`]: what the store needs to book it alone or with others. The
/// use case implements it (`transactions::record`), so the store knows nothing of offers or
/// receipts, and the use case nothing of batches.
pub trait SaleJob: Send + Sync + 'static {
    /// What the caller gets for a booked sale (a receipt), or for a replayed key.
    type Answer: Send + 'static;
    /// A refusal, or a database error.
    type Error: From<DbError> + From<diesel::result::Error> + DbFailure + Send + 'static;

    /// Whether it may be booked with other sales: only if judging it writes nothing (a
    /// redemption consumes its member token while it is judged).
    fn batchable(&self) -> bool;
    /// The Idempotency-Key and the partner_txn_id, each scoped by partner: two sales that share
    /// either never share a batch.
    fn identity(&self) -> (String, String);
    /// The member as the request names them: a batch's sales take their locks in this order.
    fn member_name(&self) -> &str;
    /// Locks, reads and judges the sale in the open transaction, writing nothing. An error is
    /// the database's (a refusal is [`Judged::Answered`]).
    fn prepare(&self, conn: &mut DbConn) -> Result<Judged<Self::Answer, Self::Error>, DbError>;
    /// The whole sale, in the transaction it is given.
    fn alone(&self, conn: &mut DbConn) -> Result<Self::Answer, Self::Error>;
}

/// What judging a sale found.
pub enum Judged<A, E> {
    /// Its answer, nothing to book: a refusal, or the answer stored under its key.
    Answered(Result<A, E>),
    /// Rows to book, and the answer once they are committed.
    Book(Box<SaleRows>, A),
}

/// The gateway's storage engine. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// Where the requests' blocking database work runs.
    db: Executor,
    /// Where upkeep runs (`jobs`, readiness): never queued behind requests, never holding
    /// a request's thread.
    upkeep: Executor,
    engine: Engine,
}

/// Threads (and connections) for upkeep: the chain linker may keep one busy under load.
const UPKEEP_THREADS: u32 = 2;

enum Engine {
    Sqlite(sqlite::Engine),
    Postgres(postgres::Engine),
}

impl Store {
    /// Opens the pool for `request_threads` database threads (plus the backend's own), applies
    /// the migrations and starts the threads. Blocking.
    pub fn open(url: &DatabaseUrl, request_threads: u32) -> Result<Store, DbError> {
        let own = match url {
            DatabaseUrl::Sqlite(_) => sqlite::Engine::CONNECTIONS,
            DatabaseUrl::Postgres(_) => postgres::Engine::CONNECTIONS,
        };
        let pool = crate::db::pool(url, request_threads + own + UPKEEP_THREADS)?;
        {
            let mut conn = pool.get()?;
            crate::db::migrate(&mut conn)?;
        }
        let threads = |e: std::io::Error| DbError::Unavailable(format!("starting threads: {e}"));
        let engine = match url {
            DatabaseUrl::Sqlite(_) => {
                Engine::Sqlite(sqlite::Engine::start(&pool).map_err(threads)?)
            }
            DatabaseUrl::Postgres(_) => {
                Engine::Postgres(postgres::Engine::start(&pool).map_err(threads)?)
            }
        };
        Ok(Store {
            inner: Arc::new(Inner {
                db: Executor::start(request_threads as usize).map_err(threads)?,
                upkeep: Executor::start_named("upkeep", UPKEEP_THREADS as usize)
                    .map_err(threads)?,
                pool,
                engine,
            }),
        })
    }

    /// The pool, for work that runs on a thread of its own (the CLI's, a test's).
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Runs `work` on a database thread with a connection of the pool, without blocking the
    /// caller's async worker: a request's reads, and its writes that are not its own
    /// transaction's (a finance rerun, an upload).
    pub async fn read<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    {
        Self::run_on(&self.inner.db, self.inner.pool.clone(), work).await
    }

    /// [`Store::read`] for upkeep (the jobs, readiness), on threads of its own.
    pub async fn upkeep<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    {
        Self::run_on(&self.inner.upkeep, self.inner.pool.clone(), work).await
    }

    async fn run_on<T, E, F>(threads: &Executor, pool: Pool, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    {
        threads
            .run(move || {
                let mut conn = pool.get().map_err(DbError::from)?;
                work(&mut conn)
            })
            .await
            .unwrap_or_else(|e| Err(DbError::from(e).into()))
    }

    /// Runs a request's write (a sale, a reversal, a member token) in a write transaction, and
    /// answers once it has committed. On SQLite it joins the writer's next group-commit batch,
    /// in a savepoint of its own, and may run more than once (each time after its changes were
    /// rolled back), so `work` must only read what it captured. On PostgreSQL it runs in a
    /// transaction of its own on a database thread: everything before a partner's chain lock
    /// runs side by side, and the server shares WAL flushes between concurrent commits itself.
    pub async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + DbFailure + Send + 'static,
        F: FnMut(&mut DbConn) -> Result<T, E> + Send + 'static,
    {
        let ran = match &self.inner.engine {
            Engine::Sqlite(e) => e.writer.run(Guard::Savepoint, work).await,
            Engine::Postgres(_) => {
                let pool = self.inner.pool.clone();
                let mut work = work;
                self.inner
                    .db
                    .run(move || {
                        let mut conn = pool.get().map_err(DbError::from)?;
                        crate::db::write_tx(&mut conn, |c| work(c))
                    })
                    .await
            }
        };
        ran.unwrap_or_else(|e| Err(DbError::from(e).into()))
    }

    /// Claims a signed request's nonce (inserts it, unless it was seen) and reads the registry
    /// generation in the same statement: `(fresh, generation)`. `with_others`: the request
    /// writes anyway (a sale, a reversal, a token), so its claim may share a commit with
    /// others' (on SQLite in the writer's batch, on PostgreSQL a nonce claimer's statement);
    /// otherwise (a read such as verify) it is claimed in a statement of its own, where the
    /// hand-over to a shared writer would cost more than it saves.
    pub async fn claim_nonce(
        &self,
        claim: NonceClaim,
        with_others: bool,
    ) -> Result<(bool, i64), DbError> {
        let claimed = match (&self.inner.engine, with_others) {
            (Engine::Sqlite(e), true) => {
                e.writer
                    .run(Guard::SingleStatement, move |conn| {
                        Ok::<_, DbError>(Nonce::claim_reading_generation(conn, &claim.row())?)
                    })
                    .await
            }
            (Engine::Postgres(e), true) => e.nonces.claim(claim).await,
            (_, false) => {
                let pool = self.inner.pool.clone();
                self.inner
                    .db
                    .run(move || {
                        let mut conn = pool.get()?;
                        Ok(Nonce::claim_reading_generation(&mut conn, &claim.row())?)
                    })
                    .await
            }
        };
        claimed.unwrap_or_else(|e| Err(e.into()))
    }

    /// Books a sale: on PostgreSQL with whatever other sales are waiting when it is
    /// [`SaleJob::batchable`] (`postgres::sale_batch`), else as a request's write
    /// ([`Store::write`]). Every caller gets the answer its sale would have got alone.
    pub async fn book_sale<J: SaleJob>(&self, job: Arc<J>) -> Result<J::Answer, J::Error> {
        if let Engine::Postgres(e) = &self.inner.engine {
            if job.batchable() {
                let Some(answered) = e.sales.submit(job) else {
                    return Err(DbError::from(StoreError::Overloaded).into());
                };
                return answered
                    .await
                    .unwrap_or_else(|_| Err(DbError::from(StoreError::Lost).into()));
            }
        }
        self.write(move |conn| job.alone(conn)).await
    }

    /// Whether a booking links its record into its partner's hash chain in its own
    /// transaction (SQLite, whose one writer serialises every booking anyway), or leaves it to
    /// the chain linker just after it commits (PostgreSQL: holding a partner's chain from
    /// booking to commit made each booking wait for the previous one's WAL flush).
    pub fn chains_linked_at_booking(&self) -> bool {
        matches!(self.inner.engine, Engine::Sqlite(_))
    }

    /// Keeps SQLite's WAL bounded (`sqlite::wal`): a PASSIVE checkpoint, then a RESTART by the
    /// writer between two batches when the WAL did not rewind on its own. Nothing on PostgreSQL.
    pub async fn checkpoint_wal(&self) -> Result<Option<sqlite::wal::WalState>, DbError> {
        let Engine::Sqlite(e) = &self.inner.engine else {
            return Ok(None);
        };
        let passive = self
            .upkeep(|conn| Ok::<_, DbError>(sqlite::wal::checkpoint_passive(conn)?))
            .await?;
        if !passive.is_some_and(|s| s.wants_restart()) {
            return Ok(passive);
        }
        e.writer
            .restart_wal()
            .await
            .unwrap_or_else(|e| Err(e.into()))
    }

    /// Analyses PostgreSQL's young or fast-growing tables (`postgres::planner_stats`); returns
    /// their names. Nothing on SQLite.
    pub async fn refresh_planner_stats(&self) -> Result<Vec<String>, DbError> {
        if !matches!(self.inner.engine, Engine::Postgres(_)) {
            return Ok(Vec::new());
        }
        self.upkeep(postgres::planner_stats::refresh).await
    }
}

/// Whether `conn`'s booking links records into their chains in its own transaction: see
/// [`Store::chains_linked_at_booking`], for code that holds a connection rather than the store.
pub fn chains_linked_at_booking(conn: &DbConn) -> bool {
    matches!(conn, DbConn::Sqlite(_))
}

/// A claim as a request hands it over.
impl From<&NewNonce<'_>> for NonceClaim {
    fn from(row: &NewNonce<'_>) -> Self {
        NonceClaim {
            key_id: row.key_id.to_owned(),
            nonce_sha256: row.nonce_sha256.to_owned(),
            expires_at: row.expires_at,
        }
    }
}
