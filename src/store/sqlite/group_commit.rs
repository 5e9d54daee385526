//! Group commit on SQLite: the request path's writes (nonce claims, sales, reversals, member
//! tokens) run on one writer thread that puts whatever work is waiting into one transaction,
//! with one savepoint per request, and commits once.
//!
//! Why: SQLite has a single writer whatever we do, and committing is the expensive part of a
//! small write: every commit appends each page it touched to the WAL, and the pages of one
//! sale (index tails, the chain head, the nonce table) are mostly those of the next. A batch
//! writes them once. The writer also keeps one connection, whose page cache stays warm
//! because no other connection writes in between.
//!
//! What stays as it was:
//! - **Atomic per request.** Each job runs in its own savepoint: a job that fails is rolled
//!   back alone and the others in its batch still commit.
//! - **Durable before answered.** A job's answer is sent only after its batch has committed.
//! - **No batch-made failures.** A job that failed on a database error in a batch of several,
//!   and every job of a batch whose commit failed, runs again alone in a fresh transaction, so
//!   the answer a caller gets is one its request would have got on its own.
//! - **Bounded.** At most [`MAX_BATCH_JOBS`] jobs per transaction and [`MAX_QUEUED_JOBS`]
//!   waiting; beyond that the caller gets `Overloaded` (503).
//!
//! Not on PostgreSQL: there a batch of whole requests, savepoints and all, would be one
//! connection working through its jobs one round trip at a time (measured at half the
//! throughput of separate transactions), and the server already shares WAL flushes between
//! concurrent commits (see `Store::write`). What pays there is fewer statements: sales
//! are batched into one booking statement instead (`store::postgres::sale_batch`).
use super::super::executor::StoreError;
use super::wal::{self, WalState};
use crate::db::{DbConn, DbError, Pool};
use crossbeam_channel::{bounded, Receiver, Sender};
use diesel::connection::TransactionManager;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Jobs per transaction. A sale's work is a few hundred microseconds, so a full batch holds
/// the writer for a few tens of milliseconds at most.
pub const MAX_BATCH_JOBS: usize = 64;
/// The writer's page cache: 16 MiB (the default is 2 MiB) keeps the indexes a sale touches in
/// memory instead of re-reading them from the WAL. Only the writer gets it: no other
/// connection writes, so only its cache survives from one transaction to the next.
pub const WRITER_CACHE_PRAGMA: &str = "PRAGMA cache_size = -16384;";
/// Jobs waiting beyond this are refused (503) instead of queueing without bound.
pub const MAX_QUEUED_JOBS: usize = 4096;

/// An error that says whether it came from the database (and so may pass when run alone)
/// rather than from the request (a refusal, which would be the same alone).
pub trait DbFailure {
    fn is_db_failure(&self) -> bool;
}

impl DbFailure for diesel::result::Error {
    fn is_db_failure(&self) -> bool {
        true
    }
}

impl DbFailure for DbError {
    fn is_db_failure(&self) -> bool {
        true
    }
}

trait Job: Send {
    /// Runs the work in the open transaction (in a savepoint of its own unless it is a single
    /// statement, see [`Guard::SingleStatement`]) and keeps its outcome.
    fn run(&mut self, conn: &mut DbConn);
    /// False for a job run without a savepoint: if it fails, the whole batch must roll back.
    fn guarded(&self) -> bool;
    /// True when the kept outcome is a database failure.
    fn failed_in_db(&self) -> bool;
    /// Answers the caller: the kept outcome if the transaction committed, else the error.
    fn answer(self: Box<Self>, committed: Result<(), DbError>);
}

struct Pending<T, E, F> {
    work: F,
    savepoint: bool,
    outcome: Option<Result<T, E>>,
    reply: tokio::sync::oneshot::Sender<Result<T, E>>,
}

impl<T, E, F> Job for Pending<T, E, F>
where
    T: Send,
    E: From<DbError> + From<diesel::result::Error> + DbFailure + Send,
    F: FnMut(&mut DbConn) -> Result<T, E> + Send,
{
    fn run(&mut self, conn: &mut DbConn) {
        let work = &mut self.work;
        let savepoint = self.savepoint;
        let depth_before = depth(conn);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if savepoint {
                // Inside an open transaction this is a savepoint, rolled back if `work` fails.
                diesel::Connection::transaction(&mut *conn, |c| work(c))
            } else {
                work(conn)
            }
        }))
        .unwrap_or_else(|_| {
            super::super::record_worker_panic("writer");
            // A panic skips diesel's rollback: undo the savepoints it left open, so that the
            // batch's commit really is the batch's and not a savepoint's release.
            while depth(conn) > depth_before {
                let rolled_back =
                    <DbConn as diesel::Connection>::TransactionManager::rollback_transaction(conn);
                if rolled_back.is_err() {
                    break;
                }
            }
            Err(E::from(DbError::Invariant(
                "a database job panicked".into(),
            )))
        });
        self.outcome = Some(outcome);
    }

    fn guarded(&self) -> bool {
        self.savepoint
    }

    fn failed_in_db(&self) -> bool {
        matches!(&self.outcome, Some(Err(e)) if e.is_db_failure())
    }

    fn answer(self: Box<Self>, committed: Result<(), DbError>) {
        let result = match (self.outcome, committed) {
            // A failed job changed nothing, whatever became of its transaction.
            (Some(Err(refused)), _) => Err(refused),
            (Some(Ok(done)), Ok(())) => Ok(done),
            (Some(Ok(_)), Err(e)) => Err(E::from(e)),
            (None, _) => Err(E::from(DbError::Invariant(
                "a database job was answered before it ran".into(),
            ))),
        };
        // A caller that went away (client disconnected) no longer needs the answer.
        let _ = self.reply.send(result);
    }
}

type BoxedJob = Box<dyn Job>;

/// What the writer's queue carries: request work, or a request to rewind the WAL.
enum Message {
    Job(BoxedJob),
    RestartWal(tokio::sync::oneshot::Sender<Result<Option<WalState>, DbError>>),
}

/// How many transactions and savepoints `conn` has open (0 when none, or when unknown).
fn depth(conn: &mut DbConn) -> u32 {
    <DbConn as diesel::Connection>::TransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()
        .ok()
        .flatten()
        .map_or(0, std::num::NonZeroU32::get)
}

/// How a job is kept apart from the others of its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// In a savepoint of its own: it fails alone.
    Savepoint,
    /// One statement, no savepoint: if it fails, the batch runs again job by job.
    SingleStatement,
}

/// The SQLite writer of one gateway.
#[derive(Clone)]
pub struct GroupCommit {
    queue: Sender<Message>,
}

impl GroupCommit {
    /// Starts the writer thread over `pool`.
    pub fn start(pool: Pool) -> std::io::Result<Self> {
        let (queue, jobs) = bounded::<Message>(MAX_QUEUED_JOBS);
        std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || writer(&pool, &jobs))?;
        Ok(GroupCommit { queue })
    }

    /// Runs `work` in the next batch, and waits (without blocking the async worker) until its
    /// batch has committed. With [`Guard::Savepoint`], `work` may run more than once, each time
    /// in a fresh savepoint whose changes were rolled back, so it must only read what it
    /// captured. [`Guard::SingleStatement`] is for work that is one statement, which either
    /// succeeds or fails with a database error: it runs without a savepoint (two statements
    /// fewer), and if it fails the whole batch rolls back and every job in it runs again alone.
    pub async fn run<T, E, F>(&self, guard: Guard, work: F) -> Result<Result<T, E>, StoreError>
    where
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + DbFailure + Send + 'static,
        F: FnMut(&mut DbConn) -> Result<T, E> + Send + 'static,
    {
        let savepoint = guard == Guard::Savepoint;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: BoxedJob = Box::new(Pending {
            work,
            savepoint,
            outcome: None,
            reply,
        });
        self.queue
            .try_send(Message::Job(job))
            .map_err(|_| StoreError::Overloaded)?;
        answer.await.map_err(|_| StoreError::Lost)
    }

    /// Has the writer run a RESTART checkpoint between two batches (see `super::wal`): the writer
    /// holds the write lock most of the time under load, so another connection would rarely
    /// get it.
    pub async fn restart_wal(&self) -> Result<Result<Option<WalState>, DbError>, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queue
            .try_send(Message::RestartWal(reply))
            .map_err(|_| StoreError::Overloaded)?;
        answer.await.map_err(|_| StoreError::Lost)
    }
}

/// The writer: takes the first waiting job and whatever else is already queued behind it, up to
/// [`MAX_BATCH_JOBS`]. No job waits for a batch to fill: under light load a batch is one job.
///
/// The writer keeps one connection for as long as it works: SQLite keeps a connection's page
/// cache only while no other connection writes, so a writer that took any pooled connection
/// re-read the pages it had just written. A batch that fails to commit gives its connection
/// back (it may be the connection that failed) and the writer takes another.
fn writer(pool: &Pool, jobs: &Receiver<Message>) {
    let mut held: Option<crate::db::PooledConn> = None;
    // Ends when every sender (the application state) is gone.
    while let Ok(first) = jobs.recv() {
        let mut batch = Vec::new();
        let mut restart = None;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Job(job) => batch.push(job),
                // Run after this batch; the batch ends here so that it waits no longer.
                Message::RestartWal(reply) => restart = Some(reply),
            }
            if batch.len() < MAX_BATCH_JOBS && restart.is_none() {
                next = jobs.try_recv().ok();
            }
        }
        let conn = match held.take() {
            Some(conn) => conn,
            None => match pool.get() {
                Ok(mut conn) => {
                    use diesel::connection::SimpleConnection;
                    if let Err(e) = conn.batch_execute(WRITER_CACHE_PRAGMA) {
                        tracing::warn!(error.message = %e, "could not enlarge the writer's page cache");
                    }
                    conn
                }
                Err(e) => {
                    for job in batch {
                        job.answer(Err(DbError::Unavailable(e.to_string())));
                    }
                    if let Some(reply) = restart {
                        let _ = reply.send(Err(DbError::Unavailable(e.to_string())));
                    }
                    continue;
                }
            },
        };
        let mut conn = conn;
        // Each job is already run under `catch_unwind` (`Pending::run`); this catches a panic of
        // the writer's own, which drops the batch's answers (500s) and the connection, whose
        // transaction then rolls back. The writer goes on with the next batch.
        let ran = catch_unwind(AssertUnwindSafe(|| {
            let healthy = batch.is_empty() || run_batch(&mut conn, batch);
            if let Some(reply) = restart {
                // The caller may have gone (shut down); the checkpoint is done either way.
                let _ = reply.send(wal::checkpoint_restart(&mut conn).map_err(DbError::from));
            }
            healthy
        }));
        match ran {
            Ok(true) => held = Some(conn),
            Ok(false) => {}
            Err(_) => super::super::record_worker_panic("writer"),
        }
    }
}

/// Runs and answers a batch; false when a commit failed (the connection is suspect).
fn run_batch(conn: &mut DbConn, mut batch: Vec<BoxedJob>) -> bool {
    if batch.len() == 1 {
        return batch.into_iter().all(|job| run_alone(conn, job));
    }
    let committed = crate::db::write_tx(conn, |c| -> Result<(), DbError> {
        for job in batch.iter_mut() {
            job.run(c);
            if !job.guarded() && job.failed_in_db() {
                // Nothing undid this failure: on PostgreSQL the transaction is now aborted.
                return Err(DbError::Invariant(
                    "a single-statement job failed; the batch is rolled back".into(),
                ));
            }
        }
        Ok(())
    });
    let mut healthy = true;
    let again: Vec<BoxedJob> = match committed {
        Ok(()) => {
            let mut again = Vec::new();
            for job in batch {
                if job.failed_in_db() {
                    again.push(job);
                } else {
                    job.answer(Ok(()));
                }
            }
            again
        }
        Err(e) => {
            tracing::warn!(error = %e, jobs = batch.len(), "a batch failed to commit; its jobs run again one by one");
            healthy = false;
            batch
        }
    };
    for job in again {
        healthy &= run_alone(conn, job);
    }
    healthy
}

/// Runs one job in its own transaction and answers it; false when the commit failed.
fn run_alone(conn: &mut DbConn, mut job: BoxedJob) -> bool {
    let committed = crate::db::write_tx(conn, |c| -> Result<(), DbError> {
        job.run(c);
        if job.failed_in_db() {
            return Err(DbError::Invariant("the job failed; rolled back".into()));
        }
        Ok(())
    });
    // A database failure may have been the connection's: the writer takes a fresh one.
    let healthy = committed.is_ok();
    job.answer(committed);
    healthy
}
