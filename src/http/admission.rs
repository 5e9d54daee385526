//! Fair admission: at most `max_in_flight` signed requests of one worker are worked on at once,
//! and the others wait their turn in the order they asked for it.
//!
//! Why: an actix worker is a Tokio current-thread runtime. A request takes several turns on it:
//! one to be read and checked, one after each of its database jobs, and one to be signed. The
//! runtime serves tasks woken by their sockets (new requests) before tasks woken by the
//! database threads (requests half done): its local queue first, its remote queue only every
//! 31st task or when the local one is empty. With every connection of a load in progress at
//! once, a request half done kept waiting behind newly arrived ones, and the latency tail grew
//! well past the mean. With a few in progress and the rest queued in arrival order, the tail
//! stays close to the mean at the same CPU per request (`docs/benchmarks.md`).
//!
//! A request asks for its turn after its body has been read, so a slow sender holds no place,
//! and gives it back once its answer is signed, before the answer is written, so a slow reader
//! holds none either. The queue is bounded as well: a request that would be waiter number
//! `max_waiting + 1` is refused at once (503), rather than queued without limit.
//!
//! One `Admission` per worker (see `startup`): a place is taken and given back on the worker's
//! own thread, so handing it on wakes the next request where it runs.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

// Its defaults and bounds, by backend, are the configuration's (`config::admission`).

pub struct Admission {
    places: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// A request's place; dropping it gives the place to the next request in line.
#[derive(Debug)]
pub struct Turn {
    _place: OwnedSemaphorePermit,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdmissionError {
    #[error("{0} requests are already waiting for a turn on this worker")]
    QueueFull(usize),
    #[error("the worker is shutting down")]
    Closed,
}

/// Counts a waiting request until it is dropped, whether it got its turn or its client went
/// away while it waited (the future is then dropped mid-wait).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    /// `max_in_flight` places (at least 1), at most `max_waiting` requests waiting for one.
    pub fn new(max_in_flight: u32, max_waiting: u32) -> Self {
        Admission {
            places: Arc::new(Semaphore::new(max_in_flight.max(1) as usize)),
            waiting: AtomicUsize::new(0),
            max_waiting: max_waiting as usize,
        }
    }

    /// Waits for a place, in arrival order. A free place is taken at once: tokio's semaphore
    /// hands a returned place to the first waiter, so one is only ever free when nobody waits,
    /// and taking it jumps no queue.
    pub async fn turn(&self) -> Result<Turn, AdmissionError> {
        if let Ok(place) = self.places.clone().try_acquire_owned() {
            return Ok(Turn { _place: place });
        }
        let before = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.waiting);
        if before >= self.max_waiting {
            return Err(AdmissionError::QueueFull(before));
        }
        let place = self
            .places
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AdmissionError::Closed)?;
        Ok(Turn { _place: place })
    }

    /// Requests waiting for a place now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Places free now.
    pub fn free(&self) -> usize {
        self.places.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn places_go_in_arrival_order_and_the_queue_is_bounded() {
        let admission = Arc::new(Admission::new(1, 2));
        let first = admission.turn().await.expect("a free place");
        assert_eq!(admission.free(), 0);

        // Two wait, in this order; a third finds the queue full.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut waiters = Vec::new();
        for name in ["second", "third"] {
            let (queued, tx) = (admission.clone(), tx.clone());
            waiters.push(tokio::spawn(async move {
                let turn = queued.turn().await.expect("a place in time");
                tx.send(name).expect("receiver alive");
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(turn);
            }));
            // Let it reach the queue before the next one asks.
            while admission.waiting() < waiters.len() {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(
            admission.turn().await.unwrap_err(),
            AdmissionError::QueueFull(2)
        );
        assert_eq!(
            admission.waiting(),
            2,
            "a refused request does not stay counted"
        );
        assert!(
            rx.try_recv().is_err(),
            "nobody got a place while the first held it"
        );

        drop(first);
        for w in waiters {
            w.await.expect("waiter finished");
        }
        assert_eq!(rx.recv().await, Some("second"));
        assert_eq!(rx.recv().await, Some("third"));
        assert_eq!((admission.free(), admission.waiting()), (1, 0));
    }

    #[tokio::test]
    async fn a_request_dropped_while_waiting_leaves_the_queue() {
        let admission = Admission::new(1, 1);
        let held = admission.turn().await.expect("a free place");
        let gave_up = tokio::time::timeout(Duration::from_millis(10), admission.turn()).await;
        assert!(gave_up.is_err(), "no place while one is held");
        assert_eq!(admission.waiting(), 0);
        drop(held);
        // The queue has room again, and the place is free.
        let again = admission.turn().await.expect("the place once given back");
        drop(again);
        assert_eq!(admission.free(), 1);
    }
}
