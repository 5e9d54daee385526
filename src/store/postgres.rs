//! The PostgreSQL engine: sales booked several to a statement (`sale_batch`), nonces claimed
//! several to a statement (`nonce_batch`), and planner statistics kept in step with young
//! tables (`planner_stats`).
pub mod bookings;
pub mod nonce_batch;
pub mod planner_stats;
pub mod sale_batch;

use crate::db::Pool;
use nonce_batch::NonceBatcher;
use sale_batch::SaleBatcher;

/// Threads booking sales, each with a connection while it books. At concurrency 32 and
/// batches of up to 8, four keep every sale in a batch without leaving the pool (16 by default)
/// short for the other requests.
pub const SALE_BATCH_THREADS: usize = 4;
/// Threads claiming nonces, each with a connection while it claims. A claim is one short
/// statement, so two keep up with the sale batchers: while one waits for PostgreSQL, the other
/// gathers the next batch.
pub const NONCE_BATCH_THREADS: usize = 2;

pub(super) struct Engine {
    pub(super) sales: SaleBatcher,
    pub(super) nonces: NonceBatcher,
}

impl Engine {
    /// Connections of its own: one per sale batcher and nonce claimer, so none waits for a
    /// request's.
    pub(super) const CONNECTIONS: u32 = (SALE_BATCH_THREADS + NONCE_BATCH_THREADS) as u32;

    pub(super) fn start(pool: &Pool) -> std::io::Result<Self> {
        Ok(Engine {
            sales: SaleBatcher::start(pool.clone(), SALE_BATCH_THREADS)?,
            nonces: NonceBatcher::start(pool.clone(), NONCE_BATCH_THREADS)?,
        })
    }
}
