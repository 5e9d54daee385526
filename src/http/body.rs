//! Reading a request's body without letting a slow or stalled sender hold the gateway.
//!
//! A body is read into a buffer that grows with the bytes that arrived, never ahead of them (a
//! declared `Content-Length` reserves nothing), and within a deadline counted from the
//! request's head (`ALLIANCE_BODY_TIMEOUT_MS`). A body that has not all arrived [`GRACE_MS`]
//! after the gateway first waited for it is a slow one: before the gateway waits for it, its caller's certificate is
//! checked against the registry as it is now (not as cached), and it takes one of its
//! identity's few places for slow bodies (`ALLIANCE_MAX_SLOW_BODIES_PER_IDENTITY`). So a
//! suspended partner, or anyone with a certificate of the CA, holds at most that many
//! connections, each for at most the deadline, and a body over its limit is refused before a
//! byte more is kept.
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// How long a body may take to arrive before it counts as slow. A single request's body
/// arrives with its head or a round trip after it (`Expect: 100-continue`); a batch or an
/// upload of megabytes over a slow line takes longer, and is checked like any slow body.
pub const GRACE_MS: u64 = 200;

#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// More than the route's limit arrived (or was declared).
    TooLarge(usize),
    /// The body did not arrive before the deadline.
    TimedOut,
    /// The connection broke or the framing was wrong mid-body.
    Unreadable(String),
}

/// A body being read.
pub struct BodyReader {
    payload: actix_web::dev::Payload,
    buf: BytesMut,
    limit: usize,
    done: bool,
}

impl BodyReader {
    pub fn new(payload: actix_web::dev::Payload, limit: usize) -> Self {
        BodyReader {
            payload,
            buf: BytesMut::new(),
            limit,
            done: false,
        }
    }

    fn take(
        &mut self,
        chunk: Option<Result<Bytes, actix_web::error::PayloadError>>,
    ) -> Result<(), BodyError> {
        match chunk {
            None => {
                self.done = true;
                Ok(())
            }
            Some(Err(e)) => Err(BodyError::Unreadable(e.to_string())),
            Some(Ok(chunk)) => {
                if self.buf.len().saturating_add(chunk.len()) > self.limit {
                    return Err(BodyError::TooLarge(self.limit));
                }
                self.buf.extend_from_slice(&chunk);
                Ok(())
            }
        }
    }

    /// Reads what has arrived already, without waiting; true once the body is complete.
    pub fn read_ready(&mut self) -> Result<bool, BodyError> {
        while !self.done {
            match self.payload.next().now_or_never() {
                Some(chunk) => self.take(chunk)?,
                None => break,
            }
        }
        Ok(self.done)
    }

    /// Reads until the body is complete (true) or `until` passes (false).
    pub async fn read_until(&mut self, until: Instant) -> Result<bool, BodyError> {
        if self.read_ready()? {
            return Ok(true);
        }
        let deadline = tokio::time::sleep_until(until);
        tokio::pin!(deadline);
        while !self.done {
            tokio::select! {
                biased;
                chunk = self.payload.next() => self.take(chunk)?,
                () = &mut deadline => return Ok(false),
            }
        }
        Ok(true)
    }

    /// The body, once complete.
    pub fn into_bytes(self) -> Bytes {
        self.buf.freeze()
    }
}

/// Places for slow bodies, per identity, for the whole process.
pub struct SlowBodies {
    per_identity: usize,
    held: Mutex<HashMap<String, usize>>,
}

/// One identity's place for a slow body; dropping it gives the place back.
pub struct SlowBodyPlace {
    places: Arc<SlowBodies>,
    identity: String,
}

impl SlowBodies {
    pub fn new(per_identity: u32) -> Arc<Self> {
        Arc::new(SlowBodies {
            per_identity: per_identity.max(1) as usize,
            held: Mutex::new(HashMap::new()),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // Nothing is left half-updated by a panic while the lock is held: it guards counters.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for one more slow body of `identity`, or `None` when it holds all of its own.
    pub fn take(self: &Arc<Self>, identity: &str) -> Option<SlowBodyPlace> {
        let mut held = self.held();
        let n = held.entry(identity.to_owned()).or_insert(0);
        if *n >= self.per_identity {
            return None;
        }
        *n += 1;
        Some(SlowBodyPlace {
            places: self.clone(),
            identity: identity.to_owned(),
        })
    }

    /// Slow bodies `identity` is sending now.
    pub fn held_by(&self, identity: &str) -> usize {
        self.held().get(identity).copied().unwrap_or(0)
    }
}

impl Drop for SlowBodyPlace {
    fn drop(&mut self) {
        let mut held = self.places.held();
        if let Some(n) = held.get_mut(&self.identity) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.identity);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_holds_at_most_its_places_and_gets_them_back() {
        let places = SlowBodies::new(2);
        let a = places.take("urn:alliance:partner:A").unwrap();
        let _b = places.take("urn:alliance:partner:A").unwrap();
        assert!(places.take("urn:alliance:partner:A").is_none());
        assert!(places.take("urn:alliance:partner:B").is_some());
        drop(a);
        assert_eq!(places.held_by("urn:alliance:partner:A"), 1);
        assert!(places.take("urn:alliance:partner:A").is_some());
    }

    #[actix_web::test]
    async fn a_body_is_read_up_to_its_limit_and_no_further() {
        let (mut tx, payload) = actix_http::h1::Payload::create(false);
        let mut reader = BodyReader::new(payload.into(), 8);
        tx.feed_data(Bytes::from_static(b"12345"));
        assert_eq!(reader.read_ready(), Ok(false));
        tx.feed_data(Bytes::from_static(b"6789"));
        assert_eq!(reader.read_ready(), Err(BodyError::TooLarge(8)));
    }

    #[actix_web::test]
    async fn a_stalled_body_times_out_and_a_complete_one_does_not() {
        let (mut tx, payload) = actix_http::h1::Payload::create(false);
        let mut reader = BodyReader::new(payload.into(), 64);
        tx.feed_data(Bytes::from_static(b"{\"a\""));
        let soon = Instant::now() + std::time::Duration::from_millis(20);
        assert_eq!(reader.read_until(soon).await, Ok(false));
        tx.feed_data(Bytes::from_static(b":1}"));
        tx.feed_eof();
        let later = Instant::now() + std::time::Duration::from_secs(5);
        assert_eq!(reader.read_until(later).await, Ok(true));
        assert_eq!(&reader.into_bytes()[..], b"{\"a\":1}");
    }
}
