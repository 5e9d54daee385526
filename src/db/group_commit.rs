//! Group commit: the request path's writes (nonce claims, sales, reversals, member tokens) run
//! on a few writer threads that each put whatever work is waiting into one database
//! transaction, with one savepoint per request, and commit once.
//!
//! Why: committing is the expensive part of a small write. On SQLite every commit appends each
//! page it touched to the WAL, and the pages of a sale (index tails, the chain head, the
//! nonce table) are mostly the same from one sale to the next; on PostgreSQL every commit
//! waits for a WAL flush, and a partner's hash chain is locked until its commit, so one
//! partner's sales could never share a flush. A batch writes those pages and waits for that
//! flush once.
//!
//! What stays as it was:
//! - **Atomic per request.** Each job runs in its own savepoint: a job that fails is rolled
//!   back alone and the others in its batch still commit.
//! - **Durable before answered.** A job's answer is sent only after its batch has committed.
//! - **No batch-made failures.** A job that failed on a database error in a batch of several,
//!   and every job of a batch whose commit failed, runs again alone in a fresh transaction, so
//!   the answer a caller gets is one that its request would have got on its own. (On
//!   PostgreSQL a batch holds its locks longer; a deadlock with another gateway's batch is
//!   detected by the server, fails that one savepoint, and the job is retried alone.)
//! - **Bounded.** At most [`MAX_BATCH_JOBS`] jobs per transaction and [`MAX_QUEUED_JOBS`]
//!   waiting per writer; beyond that the caller gets `Overloaded` (503).
//!
//! Lanes: SQLite has one writer per database, so one lane. On PostgreSQL the writers are
//! chosen by a key: a partner's sales and reversals always go to the same lane, so two lanes of
//! one gateway never wait for each other on that partner's chain lock.
use super::executor::ExecutorError;
use super::{DbConn, DbError, Pool};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Jobs per transaction. A sale's work is a few hundred microseconds, so a full batch holds
/// the writer for a few tens of milliseconds at most.
pub const MAX_BATCH_JOBS: usize = 64;
/// Jobs waiting per lane beyond this are refused (503) instead of queueing without bound.
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
    /// Runs the work in a savepoint of the open transaction and keeps its outcome.
    fn run(&mut self, conn: &mut DbConn);
    /// True when the kept outcome is a database failure.
    fn failed_in_db(&self) -> bool;
    /// Answers the caller: the kept outcome if the transaction committed, else the error.
    fn answer(self: Box<Self>, committed: Result<(), DbError>);
}

struct Pending<T, E, F> {
    work: F,
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
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            // Inside an open transaction this is a savepoint, rolled back if `work` fails.
            diesel::Connection::transaction(conn, |c| work(c))
        }))
        .unwrap_or_else(|_| {
            Err(E::from(DbError::Invariant(
                "a database job panicked".into(),
            )))
        });
        self.outcome = Some(outcome);
    }

    fn failed_in_db(&self) -> bool {
        matches!(&self.outcome, Some(Err(e)) if e.is_db_failure())
    }

    fn answer(self: Box<Self>, committed: Result<(), DbError>) {
        let result = match (committed, self.outcome) {
            (Ok(()), Some(outcome)) => outcome,
            (Ok(()), None) => Err(E::from(DbError::Invariant(
                "a database job was answered before it ran".into(),
            ))),
            (Err(e), _) => Err(E::from(e)),
        };
        // A caller that went away (client disconnected) no longer needs the answer.
        let _ = self.reply.send(result);
    }
}

type BoxedJob = Box<dyn Job>;

/// The writer lanes of one gateway.
#[derive(Clone)]
pub struct GroupCommit {
    lanes: Vec<Sender<BoxedJob>>,
}

impl GroupCommit {
    /// Starts `lanes` writer threads (at least one) over `pool`.
    pub fn start(pool: Pool, lanes: usize) -> std::io::Result<Self> {
        let mut senders = Vec::new();
        for i in 0..lanes.max(1) {
            let (tx, rx) = bounded::<BoxedJob>(MAX_QUEUED_JOBS);
            let pool = pool.clone();
            std::thread::Builder::new()
                .name(format!("db-writer-{i}"))
                .spawn(move || writer(&pool, &rx))?;
            senders.push(tx);
        }
        Ok(GroupCommit { lanes: senders })
    }

    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// Runs `work` in the next batch of the lane that `lane_key` picks, and waits (without
    /// blocking the async worker) until its batch has committed. `work` may run more than once,
    /// each time in a fresh savepoint whose changes were rolled back, so it must only read
    /// what it captured.
    pub async fn run<T, E, F>(&self, lane_key: &[u8], work: F) -> Result<Result<T, E>, ExecutorError>
    where
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + DbFailure + Send + 'static,
        F: FnMut(&mut DbConn) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: BoxedJob = Box::new(Pending {
            work,
            outcome: None,
            reply,
        });
        self.lane(lane_key)
            .try_send(job)
            .map_err(|_| ExecutorError::Overloaded)?;
        answer.await.map_err(|_| ExecutorError::Lost)
    }

    fn lane(&self, key: &[u8]) -> &Sender<BoxedJob> {
        // FNV-1a: stable and cheap; the keys are partner codes, not attacker-chosen at scale.
        let hash = key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        let index = usize::try_from(hash % self.lanes.len() as u64).unwrap_or(0);
        &self.lanes[index]
    }
}

/// One lane: takes the first waiting job and whatever else is already queued behind it, up to
/// [`MAX_BATCH_JOBS`]. No job waits for a batch to fill: under light load a batch is one job.
///
/// The lane keeps one connection for as long as it works: SQLite keeps a connection's page
/// cache only while no other connection writes, so a writer that took any pooled connection
/// re-read the pages it had just written. A batch that fails to commit gives its connection
/// back (it may be the connection that failed) and the lane takes another.
fn writer(pool: &Pool, jobs: &Receiver<BoxedJob>) {
    let mut held: Option<super::PooledConn> = None;
    // Ends when every sender (the application state) is gone.
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_JOBS {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let conn = match held.take() {
            Some(conn) => conn,
            None => match pool.get() {
                Ok(conn) => conn,
                Err(e) => {
                    for job in batch {
                        job.answer(Err(DbError::Unavailable(e.to_string())));
                    }
                    continue;
                }
            },
        };
        let mut conn = conn;
        if run_batch(&mut conn, batch) {
            held = Some(conn);
        }
    }
}

/// Runs and answers a batch; false when a commit failed (the connection is suspect).
fn run_batch(conn: &mut DbConn, mut batch: Vec<BoxedJob>) -> bool {
    if batch.len() == 1 {
        return batch.into_iter().all(|job| run_alone(conn, job));
    }
    let committed = super::write_tx(conn, |c| -> Result<(), DbError> {
        for job in batch.iter_mut() {
            job.run(c);
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
    let committed = super::write_tx(conn, |c| -> Result<(), DbError> {
        job.run(c);
        Ok(())
    });
    let healthy = committed.is_ok();
    job.answer(committed);
    healthy
}
