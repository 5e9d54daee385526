//! The write use cases as the HTTP edge calls them — a sale, a reversal, a member token, a
//! batch of sales and reversals — each run through the store ([`Store`]), which decides how
//! its backend books it. A request whose Idempotency-Key another request still holds is tried
//! again here, and only here ([`until_settled`]).
use super::idempotency::{self, Answer, Key};

/// The Idempotency-Key of a request of `cx`'s partner.
fn key_of<'a>(idem: &'a Idempotent, cx: &'a Context) -> Key<'a> {
    idem.key(cx.partner.as_str(), cx.settings.idempotency_retention_hours)
}
use super::input::{MemberName, ReversalInput, Sale};
use super::reversal::{self, Original};
use super::sale::{self, Prepared};
use super::tokens::{self, IssuedToken, TokenRequest};
use super::{batch, to_json, Ctx, Idempotent, ReversalOf, TxnError};
use crate::config::Settings;
use crate::db::{DbConn, DbError};
use crate::domain::PartnerCode;
use crate::pki::secrets::MemberKeys;
use crate::registry::RegistryView;
use crate::store::{Judged, SaleJob, Store};
use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::Arc;

/// What a write needs besides the database, owned, so that it can be handed to the store's
/// threads: the settings, the member-data keys, the partner, the request's time and the
/// registry as the request's checks read it.
#[derive(Clone)]
pub struct Context {
    pub settings: Arc<Settings>,
    pub keys: Arc<MemberKeys>,
    pub partner: PartnerCode,
    pub now: DateTime<Utc>,
    pub registry: RegistryView,
}

impl Context {
    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            settings: &self.settings,
            keys: &self.keys,
            partner: &self.partner,
            now: self.now,
            registry: &self.registry,
        }
    }
}

/// How long a repeat waits for the first request under its key, and how often it looks.
pub const IN_FLIGHT_WAIT_MS: u64 = 2_000;
const IN_FLIGHT_RETRY_MS: u64 = 5;

/// Runs `attempt` until it is not refused for a key in flight, for at most
/// [`IN_FLIGHT_WAIT_MS`]: a till that retries quickly gets the first request's answer rather
/// than `idempotency-key-in-flight`. Each attempt holds no lock while this waits (a database
/// job or a group-commit batch must never sleep), and each is a fresh transaction.
pub async fn until_settled<T, F, Fut>(mut attempt: F) -> Result<T, TxnError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, TxnError>>,
{
    let deadline =
        tokio::time::Instant::now() + std::time::Duration::from_millis(IN_FLIGHT_WAIT_MS);
    loop {
        match attempt().await {
            Err(TxnError::IdempotencyKeyInFlight) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(IN_FLIGHT_RETRY_MS)).await;
            }
            other => return other,
        }
    }
}

/// `POST /v1/transactions`: records a sale once per Idempotency-Key.
pub async fn record_sale(
    store: &Store,
    cx: Arc<Context>,
    sale: Sale,
    idem: Idempotent,
) -> Result<Answer, TxnError> {
    let job = Arc::new(SaleToBook { cx, sale, idem });
    until_settled(|| store.book_sale(job.clone())).await
}

/// A sale as the store books it.
struct SaleToBook {
    cx: Arc<Context>,
    sale: Sale,
    idem: Idempotent,
}

impl SaleJob for SaleToBook {
    type Answer = Answer;
    type Error = TxnError;

    /// A redemption consumes its member token while it is judged, and a refusal must leave the
    /// token unused: only sales that redeem nothing may be booked with others.
    fn batchable(&self) -> bool {
        self.sale.redeem_points == 0
    }

    fn identity(&self) -> (String, String) {
        let partner = self.cx.partner.as_str();
        (
            format!("{partner}\0{}", self.idem.key),
            format!("{partner}\0{}", self.sale.partner_txn_id),
        )
    }

    fn member_name(&self) -> &str {
        match &self.sale.member {
            MemberName::Card(card) => card.as_str(),
            MemberName::Ref(r) => r,
        }
    }

    fn prepare(&self, conn: &mut DbConn) -> Result<Judged<Answer, TxnError>, DbError> {
        let key = key_of(&self.idem, &self.cx);
        let folded = Some((&key, self.cx.now.naive_utc()));
        let digest = &self.idem.request_digest;
        match sale::prepare_in(conn, &self.cx.ctx(), &self.sale, digest, folded) {
            Ok(Prepared::Stored(stored)) => Ok(Judged::Answered(idempotency::replay(&key, stored))),
            Ok(Prepared::Booking(b)) => {
                let answer = Answer {
                    status: 201,
                    body: b.body,
                    replayed: false,
                };
                Ok(Judged::Book(Box::new(b.rows), answer))
            }
            Err(TxnError::Db(e)) => Err(e),
            Err(refusal) => Ok(Judged::Answered(Err(refusal))),
        }
    }

    fn alone(&self, conn: &mut DbConn) -> Result<Answer, TxnError> {
        let key = key_of(&self.idem, &self.cx);
        let digest = &self.idem.request_digest;
        sale::record_once(
            conn,
            &self.cx.ctx(),
            &self.sale,
            digest,
            &key,
            self.cx.now.naive_utc(),
        )
    }
}

/// `POST /v1/transactions/{txn_id}/reversals`: records a reversal once per Idempotency-Key.
pub async fn record_reversal(
    store: &Store,
    cx: Arc<Context>,
    of: ReversalOf,
    input: ReversalInput,
    idem: Idempotent,
) -> Result<Answer, TxnError> {
    let work = Arc::new(move |conn: &mut DbConn| {
        let key = key_of(&idem, &cx);
        idempotency::once(conn, &key, cx.now.naive_utc(), |conn| {
            let original = match &of {
                ReversalOf::TxnId(id) => Original::TxnId(id),
                ReversalOf::PartnerTxnId(id) => Original::PartnerTxnId(id),
            };
            let receipt =
                reversal::record(conn, &cx.ctx(), original, &input, &idem.request_digest)?;
            Ok((201, to_json(&receipt)?))
        })
    });
    until_settled(|| {
        let work = work.clone();
        store.write(move |conn| work(conn))
    })
    .await
}

/// `POST /v1/member-tokens`.
pub async fn issue_token(
    store: &Store,
    cx: Arc<Context>,
    request: TokenRequest,
) -> Result<IssuedToken, TxnError> {
    store
        .write(move |conn| tokens::issue(conn, &cx.ctx(), &request))
        .await
}

/// `POST /v1/transactions/batch`: every item in order, each standing alone, each as the single
/// request of its kind would be recorded.
pub async fn record_batch(
    store: &Store,
    cx: Arc<Context>,
    items: Vec<serde_json::Value>,
) -> Vec<batch::ItemOutcome> {
    let mut outcomes = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let result = match batch::parse_item(&cx.ctx(), item) {
            Ok(batch::Item::Sale(sale, idem)) => record_sale(store, cx.clone(), sale, idem).await,
            Ok(batch::Item::Reversal(of, input, idem)) => {
                record_reversal(store, cx.clone(), of, input, idem).await
            }
            Err(refusal) => Err(refusal),
        };
        outcomes.push(batch::ItemOutcome { index, result });
    }
    outcomes
}
