//! Nonce claims on PostgreSQL, several to a statement: the claims of requests that write
//! anyway (sales, reversals, member tokens) go to a queue drained by a few threads, each of
//! which claims whatever is waiting in one statement ([`Nonce::claim_many`]).
//!
//! Why: on PostgreSQL every claim was a statement and a transaction of its own, and what a
//! statement or a commit costs PostgreSQL whatever it writes (executor start-up, the plan
//! cache, the commit) was a large share of its time per sale. With sales booked several to a
//! transaction (`sale_batch`), the claim would be one of a sale's two statements of its own.
//!
//! What stays as it was:
//! - **The same answer.** A nonce claimed by two requests is fresh for one of them only; the
//!   registry generation comes from the statement that claimed it, as alone ("checked, then
//!   confirmed", `auth::Stage`).
//! - **No batch-made failures.** A batch that fails runs each of its claims alone, so each
//!   caller gets the answer its claim would have got on its own.
//! - **Alone when alone.** One claim waiting is claimed as before
//!   ([`Nonce::claim_reading_generation`]), in its own statement.
//! - **Bounded.** At most [`MAX_BATCH_CLAIMS`] claims per statement and [`MAX_QUEUED_CLAIMS`]
//!   waiting; beyond that the caller gets `Overloaded` (503).
//! - **Durable as before.** Each statement commits without waiting for its WAL flush, as a
//!   single claim did; the request's own write commits later, synchronously, and so flushes
//!   the claim with it.
use super::super::executor::{next_batch, start_workers, StoreError};
use crate::db::nonces::{NewNonce, Nonce, MAX_CLAIMS_PER_STATEMENT};
use crate::db::{DbError, Pool};
use chrono::NaiveDateTime;
use crossbeam_channel::{bounded, Receiver, Sender};

/// Claims per statement. Claims are small; what bounds a batch is how many requests wait.
pub const MAX_BATCH_CLAIMS: usize = 32;
/// Claims waiting beyond this are refused (503) instead of queueing without bound.
pub const MAX_QUEUED_CLAIMS: usize = 4096;
const _: () = assert!(MAX_BATCH_CLAIMS <= MAX_CLAIMS_PER_STATEMENT);

/// A claim as a request hands it over: `(fresh, registry generation)` comes back.
pub struct NonceClaim {
    pub key_id: String,
    pub nonce_sha256: String,
    pub expires_at: NaiveDateTime,
}

impl NonceClaim {
    /// The claim as the row it inserts.
    pub fn row(&self) -> NewNonce<'_> {
        NewNonce {
            key_id: &self.key_id,
            nonce_sha256: &self.nonce_sha256,
            expires_at: self.expires_at,
        }
    }
}

type Claimed = Result<(bool, i64), DbError>;

struct Waiting {
    claim: NonceClaim,
    reply: tokio::sync::oneshot::Sender<Claimed>,
}

/// The queue of claims and the threads that make them.
#[derive(Clone)]
pub struct NonceBatcher {
    queue: Sender<Waiting>,
}

impl NonceBatcher {
    /// Starts `threads` claimers (at least one), each taking a connection from `pool` per
    /// batch.
    pub fn start(pool: Pool, threads: usize) -> std::io::Result<Self> {
        let (queue, claims) = bounded::<Waiting>(MAX_QUEUED_CLAIMS);
        start_workers("nonces", threads, &claims, move |claims| {
            work(&pool, claims)
        })?;
        Ok(NonceBatcher { queue })
    }

    /// Claims a nonce in the next batch: `(fresh, generation)` as
    /// [`Nonce::claim_reading_generation`] gives them.
    pub async fn claim(&self, claim: NonceClaim) -> Result<Claimed, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queue
            .try_send(Waiting { claim, reply })
            .map_err(|_| StoreError::Overloaded)?;
        answer.await.map_err(|_| StoreError::Lost)
    }
}

/// A claimer thread: ends when every sender (the application state) is gone.
fn work(pool: &Pool, claims: &Receiver<Waiting>) {
    while let Some(waiting) = next_batch(claims, MAX_BATCH_CLAIMS) {
        // A panic drops the batch's answers (its callers get a 500) and the thread goes on.
        let ran =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| claim_batch(pool, waiting)));
        if ran.is_err() {
            super::super::record_worker_panic("nonces");
        }
    }
}

/// Claims one batch: together in one statement, or each alone if that fails.
fn claim_batch(pool: &Pool, waiting: Vec<Waiting>) {
    {
        let mut conn = match pool.get() {
            Ok(conn) => conn,
            Err(e) => {
                let message = e.to_string();
                for w in waiting {
                    let _ = w.reply.send(Err(DbError::Unavailable(message.clone())));
                }
                return;
            }
        };
        if waiting.len() > 1 {
            let rows: Vec<NewNonce<'_>> = waiting.iter().map(|w| w.claim.row()).collect();
            let together = Nonce::claim_many(&mut conn, &rows);
            drop(rows);
            match together {
                Ok((fresh, generation)) if fresh.len() == waiting.len() => {
                    // Their ratio is the mean batch size (`/metrics`).
                    metrics::counter!("alliance_nonce_batches_total").increment(1);
                    metrics::counter!("alliance_nonces_batched_total")
                        .increment(waiting.len() as u64);
                    for (w, fresh) in waiting.into_iter().zip(fresh) {
                        // The request may have gone (its client hung up): nothing to tell.
                        let _ = w.reply.send(Ok((fresh, generation)));
                    }
                    return;
                }
                Ok((fresh, _)) => tracing::error!(
                    claims = waiting.len(),
                    answers = fresh.len(),
                    "nonce batch answered the wrong number of claims; claiming each alone"
                ),
                Err(e) => tracing::debug!(
                    error.message = %e,
                    claims = waiting.len(),
                    "nonce batch failed; claiming each alone"
                ),
            }
        }
        for w in waiting {
            let claimed =
                Nonce::claim_reading_generation(&mut conn, &w.claim.row()).map_err(DbError::from);
            let _ = w.reply.send(claimed);
        }
    }
}
