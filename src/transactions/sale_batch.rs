//! Sales on PostgreSQL, several to a transaction: a batch's sales are each locked, read and
//! judged as they would be alone (`sale::prepare_in`), then written by one statement
//! (`Transaction::book_many`) and committed once.
//!
//! Why: on PostgreSQL a sale costs mostly per statement and per commit (executor start-up, the
//! plan cache, the commit's WAL flush), not per row written (`docs/benchmarks.md`, ninth
//! session). Replayed by pgbench, batches of eight booked about twice as many sales a second as
//! one sale per transaction (`benches/pg-replay`).
//!
//! What stays as it was:
//! - **Only sales whose judging writes nothing.** A redemption consumes its member token as it
//!   is judged, so redemptions take the path of a single sale.
//! - **Alone when alone.** A batcher takes whatever sales are waiting, up to
//!   [`MAX_BATCH_SALES`]. One sale waiting runs today's path, unchanged.
//! - **The same locks.** Each sale of a batch takes its key's lock (a try-lock), the shared
//!   booking lock, its record lock and its member's lock, as alone, the batch's sales in the
//!   order of their members' names. Advisory locks are re-entrant within a session, so sales
//!   that share an Idempotency-Key or a partner_txn_id never share a batch. A sale whose member
//!   is already in the batch runs alone after the batch commits: its balance read could not
//!   see the earlier sale.
//! - **No answers the batch made up.** A refusal (member inactive, offer rule, …) writes
//!   nothing, as alone. Any database error rolls the batch back, and each of its sales then
//!   runs alone in a fresh transaction, so every caller gets the answer its request would have
//!   got on its own. Answers are sent only after the commit.
//! - **Bounded.** At most [`MAX_QUEUED_SALES`] waiting; beyond that the caller gets 503.
use super::idempotency::Answer;
use super::sale::{Booking, Prepared};
use super::{issued_account, redeemed_account, TxnError};
use crate::db::executor::{next_batch, start_workers};
use crate::db::idempotency_keys::StoredAnswer;
use crate::db::transactions::{ToBook, Transaction};
use crate::db::{write_tx, DbConn, DbError, Pool};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::collections::HashSet;

/// Sales per batch: the replay's batches of 8 booked about twice as many sales a second as
/// single sales, those of 4 about a third more.
pub const MAX_BATCH_SALES: usize = 8;
/// Sales waiting beyond this are refused (503) instead of queueing without bound.
pub const MAX_QUEUED_SALES: usize = 4096;

/// One sale as the HTTP edge hands it over: what the batcher needs, without the framework.
pub trait SaleJob: Send {
    /// The Idempotency-Key and the partner_txn_id, each scoped by partner: two sales that share
    /// either never share a batch.
    fn identity(&self) -> (String, String);
    /// The member as the request names them (card number or ref): a batch's sales take their
    /// locks in this order (see [`run`]).
    fn member_name(&self) -> &str;
    /// The sale locked, read and judged in the open transaction (`sale::prepare_in`, with the
    /// Idempotency-Key folded in). It must write nothing: a sale refused or sent to run alone
    /// stays in the batch's transaction, which commits. So only sales that redeem no points
    /// are batched (judging a redemption consumes its member token).
    fn prepare(&self, conn: &mut DbConn) -> Result<Prepared, TxnError>;
    /// The answer stored under the key replayed (or refused when the body differs).
    fn replay(&self, stored: StoredAnswer) -> Result<Answer, TxnError>;
    /// The whole sale in a transaction of its own: the path a sale takes alone.
    fn alone(&self, conn: &mut DbConn) -> Result<Answer, TxnError>;
    /// Hands the outcome to the waiting request.
    fn answer(self: Box<Self>, outcome: Result<Answer, TxnError>);
}

/// The queue of sales and the threads that book them.
#[derive(Clone)]
pub struct SaleBatcher {
    queue: Sender<Box<dyn SaleJob>>,
}

impl SaleBatcher {
    /// Starts `threads` batchers (at least one), each taking a connection from `pool` per
    /// batch.
    pub fn start(pool: Pool, threads: usize) -> std::io::Result<Self> {
        let (queue, jobs) = bounded::<Box<dyn SaleJob>>(MAX_QUEUED_SALES);
        start_workers("sales", threads, &jobs, move |jobs| work(&pool, jobs))?;
        Ok(SaleBatcher { queue })
    }

    /// Queues a sale; gives it back when the queue is full.
    pub fn submit(&self, job: Box<dyn SaleJob>) -> Result<(), Box<dyn SaleJob>> {
        self.queue.try_send(job).map_err(|e| e.into_inner())
    }
}

/// A batcher thread: ends when every sender (the application state) is gone.
fn work(pool: &Pool, jobs: &Receiver<Box<dyn SaleJob>>) {
    while let Some(waiting) = next_batch(jobs, MAX_BATCH_SALES) {
        match pool.get() {
            Ok(mut conn) => run(&mut conn, waiting),
            Err(e) => {
                let message = e.to_string();
                for job in waiting {
                    job.answer(Err(TxnError::Db(DbError::Unavailable(message.clone()))));
                }
            }
        }
    }
}

/// What became of one sale of a batch.
enum Outcome {
    /// Answered: a refusal or a replay.
    Done(Result<Answer, TxnError>),
    /// Booked: its index among the batch's bookings.
    Booked(usize),
    /// To run alone once the batch has committed.
    Alone,
}

fn run(conn: &mut DbConn, waiting: Vec<Box<dyn SaleJob>>) {
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
        match book_together(conn, &batch) {
            Ok((outcomes, bookings)) => {
                // Their ratio is the mean batch size (`/metrics`).
                metrics::counter!("alliance_sale_batches_total").increment(1);
                metrics::counter!("alliance_sales_batched_total").increment(batch.len() as u64);
                let mut later = Vec::new();
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    match outcome {
                        Outcome::Done(answer) => job.answer(answer),
                        Outcome::Booked(i) => job.answer(match bookings.get(i) {
                            Some(b) => Ok(Answer {
                                status: 201,
                                body: b.body.clone(),
                                replayed: false,
                            }),
                            None => Err(TxnError::Db(DbError::Invariant(format!(
                                "sale batch: booking {i} of {} missing",
                                bookings.len()
                            )))),
                        }),
                        Outcome::Alone => later.push(job),
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
    for job in alone {
        let outcome = job.alone(conn);
        job.answer(outcome);
    }
}

/// Prepares every sale of the batch, then books those judged good in one statement, in one
/// transaction. Any database error rolls all of it back.
fn book_together(
    conn: &mut DbConn,
    batch: &[Box<dyn SaleJob>],
) -> Result<(Vec<Outcome>, Vec<Booking>), DbError> {
    write_tx(conn, |conn| {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut bookings: Vec<Booking> = Vec::new();
        let mut members = HashSet::new();
        for job in batch {
            match job.prepare(conn) {
                Ok(Prepared::Stored(stored)) => outcomes.push(Outcome::Done(job.replay(stored))),
                Ok(Prepared::Booking(b)) => {
                    if members.insert(b.txn.member_id) {
                        outcomes.push(Outcome::Booked(bookings.len()));
                        bookings.push(*b);
                    } else {
                        outcomes.push(Outcome::Alone);
                    }
                }
                Err(TxnError::Db(e)) => return Err(e),
                Err(refusal) => outcomes.push(Outcome::Done(Err(refusal))),
            }
        }
        let accounts: Vec<(String, String)> = bookings
            .iter()
            .map(|b| {
                (
                    issued_account(&b.txn.partner_code),
                    redeemed_account(&b.txn.partner_code),
                )
            })
            .collect();
        let to_book: Vec<ToBook<'_>> = bookings
            .iter()
            .zip(&accounts)
            .map(|(b, (issued, redeemed))| ToBook {
                txn: &b.txn,
                remember_ref: b.remember_ref,
                postings: b.postings(issued, redeemed),
                answer: b.stored.as_ref(),
            })
            .collect();
        Transaction::book_many(conn, &to_book)?;
        drop(to_book);
        Ok((outcomes, bookings))
    })
}
