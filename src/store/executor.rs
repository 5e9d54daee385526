//! The threads that run blocking database work, so it never runs on the async workers. A job
//! that panics is answered `Lost` and its thread goes on.
//!
//! Why not `web::block`/`spawn_blocking`: tokio's blocking pool wakes a parked thread for every
//! job and grows to hundreds of threads, which then contend for the connection pool in no
//! particular order. Under load that cost about 15% of a core in thread hand-overs and gave a
//! long latency tail. A fixed set of threads draining one FIFO queue keeps jobs in arrival
//! order and lets a busy thread take the next job without sleeping.
use crossbeam_channel::{bounded, Receiver, Sender};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Jobs waiting beyond this are refused (503) instead of queueing without bound.
pub const MAX_QUEUED_JOBS: usize = 4096;

#[derive(Clone)]
pub struct Executor {
    queue: Sender<Job>,
}

/// Why the store could not run a piece of work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// More work is queued than the store takes on: the caller answers 503, nothing was done.
    #[error("the database work queue is full")]
    Overloaded,
    /// The worker dropped the work without an answer (it panicked): nothing was committed.
    #[error("the database worker stopped before answering")]
    Lost,
}

impl From<StoreError> for crate::db::DbError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Overloaded => crate::db::DbError::Overloaded,
            StoreError::Lost => crate::db::DbError::Unavailable(e.to_string()),
        }
    }
}

impl Executor {
    /// Starts `threads` workers (at least one), named `db-N`.
    pub fn start(threads: usize) -> std::io::Result<Self> {
        Self::start_named("db", threads)
    }

    /// Starts `threads` workers (at least one), named `{name}-N`.
    pub fn start_named(name: &'static str, threads: usize) -> std::io::Result<Self> {
        let (queue, jobs) = bounded::<Job>(MAX_QUEUED_JOBS);
        start_workers(name, threads, &jobs, move |jobs| {
            for job in jobs {
                // A job that panics drops its answer (its caller gets `Lost`, a 500) and its
                // connection goes back to the pool mid-transaction, which the pool drops
                // (`db::Manager::has_broken`): nothing half-written is committed. The thread
                // goes on with the next job.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                    super::record_worker_panic(name);
                }
            }
        })?;
        Ok(Executor { queue })
    }

    /// Runs `f` on a database thread and waits for its result without blocking the caller's
    /// async worker.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // A caller that went away (client disconnected) no longer needs the answer.
            let _ = tx.send(f());
        });
        self.queue
            .try_send(job)
            .map_err(|_| StoreError::Overloaded)?;
        rx.await.map_err(|_| StoreError::Lost)
    }
}

/// Starts `threads` threads (at least one), named `{name}-0`, `{name}-1`, …, each running
/// `work` over the one shared queue. `work` returns, and its thread ends, when every sender
/// (the application state) is gone.
pub fn start_workers<T, W>(
    name: &str,
    threads: usize,
    jobs: &Receiver<T>,
    work: W,
) -> std::io::Result<()>
where
    T: Send + 'static,
    W: Fn(&Receiver<T>) + Clone + Send + 'static,
{
    for i in 0..threads.max(1) {
        let (jobs, work) = (jobs.clone(), work.clone());
        std::thread::Builder::new()
            .name(format!("{name}-{i}"))
            .spawn(move || work(&jobs))?;
    }
    Ok(())
}

/// The next batch of a batching thread: waits for the first job, then takes whatever else is
/// already waiting, up to `max`. No job waits for a batch to fill: under light load a batch is
/// one job. `None` once every sender is gone.
pub fn next_batch<T>(jobs: &Receiver<T>, max: usize) -> Option<Vec<T>> {
    let first = jobs.recv().ok()?;
    let mut batch = vec![first];
    while batch.len() < max {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    Some(batch)
}
