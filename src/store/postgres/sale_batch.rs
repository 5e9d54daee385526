//! Sales on PostgreSQL, several to a transaction: a batch's sales are each locked, read and
//! judged as they would be alone ([`SaleJob::prepare`]), then written by one statement
//! (`bookings::book_many`) and committed once.
//!
//! Why: on PostgreSQL a sale costs mostly per statement and per commit (executor start-up, the
//! plan cache, the commit's WAL flush), not per row written (`docs/benchmarks.md`). Replayed by
//! pgbench, batches of eight booked about twice as many sales a second as one sale per
//! transaction (`benches/pg-replay`).
//!
//! What stays as it would be alone:
//! - **Only sales whose judging writes nothing** ([`SaleJob::batchable`]). A redemption
//!   consumes its member token as it is judged, so it is booked alone.
//! - **Alone when alone.** A batcher takes whatever sales are waiting, up to
//!   [`MAX_BATCH_SALES`]. One sale waiting is booked alone.
//! - **The same locks.** Each sale of a batch takes its key's lock (a try-lock), the shared
//!   booking lock, its record lock and its member's lock, as alone, the batch's sales in the
//!   order of their members' names. Advisory locks are re-entrant within a session, so sales
//!   that share an Idempotency-Key or a partner_txn_id never share a batch. A sale whose member
//!   is already in the batch runs alone after the batch commits: its balance read could not
//!   see the earlier sale.
//! - **No answers the batch made up.** A refusal writes nothing, as alone. Any database error
//!   rolls the batch back, and each of its sales then runs alone in a fresh transaction, so
//!   every caller gets the answer its request would have got on its own. Answers are sent only
//!   after the commit.
//! - **Bounded.** At most [`MAX_QUEUED_SALES`] waiting; beyond that the caller gets 503.
use super::super::bookings;
use super::super::executor::{next_batch, start_workers};
use super::super::sale::SaleRows;
use super::super::{Judged, SaleJob};
use crate::db::{write_tx, DbConn, DbError, Pool};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::collections::HashSet;
use std::sync::Arc;

/// Sales per batch: the replay's batches of 8 booked about twice as many sales a second as
/// single sales, those of 4 about a third more.
pub const MAX_BATCH_SALES: usize = 8;
/// Sales waiting beyond this are refused (503) instead of queueing without bound.
pub const MAX_QUEUED_SALES: usize = 4096;

/// A sale in the queue, its kind erased.
trait Queued: Send {
    fn identity(&self) -> (String, String);
    fn member_name(&self) -> &str;
    /// Judges the sale in the open transaction. `Ok(Some(member_id))`: its rows are to be
    /// booked with the batch; `Ok(None)`: it has its answer already. An error is the database's.
    fn prepare(&mut self, conn: &mut DbConn) -> Result<Option<i64>, DbError>;
    /// The rows judged to be booked.
    fn rows(&self) -> Option<&SaleRows>;
    /// Books the sale alone, in a transaction of its own, and keeps its outcome.
    fn alone(&mut self, conn: &mut DbConn);
    /// Keeps a failure that came before the sale could run (no connection).
    fn fail(&mut self, e: DbError);
    /// Answers: with the judged answer when `booked`, else with the outcome kept.
    fn answer(self: Box<Self>, booked: bool);
}

type Outcome<J> = Result<<J as SaleJob>::Answer, <J as SaleJob>::Error>;

struct Waiting<J: SaleJob> {
    job: Arc<J>,
    judged: Option<(Box<SaleRows>, J::Answer)>,
    outcome: Option<Outcome<J>>,
    reply: tokio::sync::oneshot::Sender<Outcome<J>>,
}

impl<J: SaleJob> Queued for Waiting<J> {
    fn identity(&self) -> (String, String) {
        self.job.identity()
    }

    fn member_name(&self) -> &str {
        self.job.member_name()
    }

    fn prepare(&mut self, conn: &mut DbConn) -> Result<Option<i64>, DbError> {
        match self.job.prepare(conn)? {
            Judged::Answered(outcome) => {
                self.outcome = Some(outcome);
                Ok(None)
            }
            Judged::Book(rows, answer) => {
                let member_id = rows.txn.member_id;
                self.judged = Some((rows, answer));
                Ok(Some(member_id))
            }
        }
    }

    fn rows(&self) -> Option<&SaleRows> {
        self.judged.as_ref().map(|(rows, _)| rows.as_ref())
    }

    fn alone(&mut self, conn: &mut DbConn) {
        self.judged = None;
        self.outcome = Some(write_tx(conn, |conn| self.job.alone(conn)));
    }

    fn fail(&mut self, e: DbError) {
        self.judged = None;
        self.outcome = Some(Err(e.into()));
    }

    fn answer(self: Box<Self>, booked: bool) {
        let outcome = match (booked, self.judged, self.outcome) {
            (true, Some((_, answer)), _) => Ok(answer),
            (_, _, Some(outcome)) => outcome,
            _ => Err(DbError::Invariant("a batched sale was answered before it ran".into()).into()),
        };
        // A caller that went away (client disconnected) no longer needs the answer.
        let _ = self.reply.send(outcome);
    }
}

/// The queue of sales and the threads that book them.
#[derive(Clone)]
pub struct SaleBatcher {
    queue: Sender<Box<dyn Queued>>,
}

impl SaleBatcher {
    /// Starts `threads` batchers (at least one), each taking a connection from `pool` per
    /// batch.
    pub fn start(pool: Pool, threads: usize) -> std::io::Result<Self> {
        let (queue, jobs) = bounded::<Box<dyn Queued>>(MAX_QUEUED_SALES);
        start_workers("sales", threads, &jobs, move |jobs| work(&pool, jobs))?;
        Ok(SaleBatcher { queue })
    }

    /// Queues a sale; `None` when the queue is full. The outcome comes on the receiver.
    pub fn submit<J: SaleJob>(
        &self,
        job: Arc<J>,
    ) -> Option<tokio::sync::oneshot::Receiver<Outcome<J>>> {
        let (reply, answered) = tokio::sync::oneshot::channel();
        let waiting = Box::new(Waiting {
            job,
            judged: None,
            outcome: None,
            reply,
        });
        self.queue.try_send(waiting).ok()?;
        Some(answered)
    }
}

/// A batcher thread: ends when every sender (the store) is gone. A panic while booking a batch
/// drops its sales' answers (their callers get a 500) and the thread goes on with the next.
fn work(pool: &Pool, jobs: &Receiver<Box<dyn Queued>>) {
    while let Some(waiting) = next_batch(jobs, MAX_BATCH_SALES) {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match pool.get() {
            Ok(mut conn) => run(&mut conn, waiting),
            Err(e) => {
                for mut job in waiting {
                    job.fail(DbError::Unavailable(e.to_string()));
                    job.answer(false);
                }
            }
        }));
        if ran.is_err() {
            super::super::record_worker_panic("sales");
        }
    }
}

/// What became of one sale of a batch.
enum Step {
    /// Answered: a refusal or a replay.
    Done,
    /// Its rows are booked with the batch.
    Booked,
    /// To run alone once the batch has committed.
    Alone,
}

fn run(conn: &mut DbConn, waiting: Vec<Box<dyn Queued>>) {
    let (mut keys, mut records) = (HashSet::new(), HashSet::new());
    let (mut batch, mut alone) = (Vec::new(), Vec::new());
    for job in waiting {
        let (key, record) = job.identity();
        if keys.contains(&key) || records.contains(&record) {
            alone.push(job);
        } else {
            keys.insert(key);
            records.insert(record);
            batch.push(job);
        }
    }
    // Each sale takes its member's lock as it is judged, so two batches that share two members
    // would deadlock if they met them in opposite orders. In the order of the members' names
    // they meet them in the same order (unless one names a member by card and the other by
    // ref; PostgreSQL then detects the deadlock, and the batch it rolls back runs sale by sale).
    batch.sort_by(|a, b| a.member_name().cmp(b.member_name()));
    if batch.len() == 1 {
        alone.splice(0..0, batch.drain(..));
    }
    if !batch.is_empty() {
        match book_together(conn, &mut batch) {
            Ok(steps) => {
                // Their ratio is the mean batch size (`/metrics`).
                metrics::counter!("alliance_sale_batches_total").increment(1);
                metrics::counter!("alliance_sales_batched_total").increment(batch.len() as u64);
                let mut later = Vec::new();
                for (job, step) in batch.into_iter().zip(steps) {
                    match step {
                        Step::Done => job.answer(false),
                        Step::Booked => job.answer(true),
                        Step::Alone => later.push(job),
                    }
                }
                alone.splice(0..0, later);
            }
            Err(e) => {
                // Rolled back: each sale runs alone and gets the answer it would have got so.
                tracing::debug!(error.message = %e, sales = batch.len(), "sale batch rolled back");
                alone.splice(0..0, batch);
            }
        }
    }
    for mut job in alone {
        job.alone(conn);
        job.answer(false);
    }
}

/// Judges every sale of the batch, then books those judged good in one statement, in one
/// transaction. Any database error rolls all of it back.
fn book_together(conn: &mut DbConn, batch: &mut [Box<dyn Queued>]) -> Result<Vec<Step>, DbError> {
    write_tx(conn, |conn| {
        let mut steps = Vec::with_capacity(batch.len());
        let mut members = HashSet::new();
        for job in batch.iter_mut() {
            steps.push(match job.prepare(conn)? {
                None => Step::Done,
                Some(member) if members.insert(member) => Step::Booked,
                Some(_) => Step::Alone,
            });
        }
        let to_book: Vec<_> = batch
            .iter()
            .zip(&steps)
            .filter(|(_, step)| matches!(step, Step::Booked))
            .filter_map(|(job, _)| job.rows().map(SaleRows::to_book))
            .collect();
        bookings::book_many(conn, &to_book)?;
        Ok(steps)
    })
}
