//! Thin handlers for the transaction endpoints: parse, run the use case on the database
//! threads, answer. The use cases live in `crate::transactions`.
use super::{blocking, write};
use crate::db::executor::ExecutorError;
use crate::db::idempotency_keys::StoredAnswer;
use crate::http::extract::PartnerCaller;
use crate::http::problem::Code;
use crate::http::problem::{json_request, Problem};
use crate::http::AppState;
use crate::transactions::idempotency::{self, Answer, Key};
use crate::transactions::input::{parse_idempotency_key, ReversalRequest, SaleRequest};
use crate::transactions::input::{MemberName, Sale};
use crate::transactions::reversal::Original;
use crate::transactions::sale::Prepared;
use crate::transactions::sale_batch::{SaleBatcher, SaleJob};
use crate::transactions::tokens::TokenRequest;
use crate::transactions::{batch, read, reversal, sale, tokens, Ctx, TxnError};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::TimeDelta;
use serde_json::json;

impl From<TxnError> for Problem {
    fn from(e: TxnError) -> Self {
        let detail = e.to_string();
        match e {
            TxnError::Validation(errors) => {
                Problem::validation(serde_json::to_value(errors).unwrap_or_default())
            }
            TxnError::Malformed(m) => Problem::new(Code::MalformedRequest, m),
            TxnError::MemberNotFound => Problem::new(Code::MemberNotFound, detail),
            TxnError::MemberInactive(_) => Problem::new(Code::MemberInactive, detail),
            TxnError::MemberAuthenticationRequired(_) => {
                Problem::new(Code::MemberAuthenticationRequired, detail)
            }
            TxnError::OfferRuleViolation(_) => Problem::new(Code::OfferRuleViolation, detail),
            TxnError::InsufficientPoints { .. } => Problem::new(Code::InsufficientPoints, detail),
            TxnError::DuplicatePartnerTxnId { txn_id } => {
                Problem::new(Code::DuplicatePartnerTxnId, detail).with("txn_id", json!(txn_id))
            }
            TxnError::DuplicatePartnerReversalId { reversal_id } => {
                Problem::new(Code::DuplicatePartnerReversalId, detail)
                    .with("reversal_id", json!(reversal_id))
            }
            TxnError::IdempotencyKeyReused => Problem::new(Code::IdempotencyKeyReused, detail),
            TxnError::IdempotencyKeyInFlight => {
                let mut p = Problem::new(Code::IdempotencyKeyInFlight, detail);
                p.retry_after_s = Some(1);
                p
            }
            TxnError::TransactionNotFound => Problem::new(Code::TransactionNotFound, detail),
            TxnError::ReversalExceedsOriginal { remaining_fen } => {
                Problem::new(Code::ReversalExceedsOriginal, detail)
                    .with("remaining_fen", json!(remaining_fen))
            }
            TxnError::Forbidden(_) => Problem::new(Code::Forbidden, detail),
            TxnError::Db(cause) => Problem::internal(&cause),
        }
    }
}

fn idempotency_key(req: &HttpRequest) -> Result<String, Problem> {
    let header = req
        .headers()
        .get("idempotency-key")
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    parse_idempotency_key(header).map_err(Problem::from)
}

fn answer(a: Answer) -> HttpResponse {
    let status =
        actix_web::http::StatusCode::from_u16(a.status).unwrap_or(actix_web::http::StatusCode::OK);
    let mut res = HttpResponse::build(status);
    if a.replayed {
        res.insert_header(("idempotent-replayed", "true"));
    }
    res.content_type("application/json").body(a.body)
}

/// Runs one idempotent write (a sale or a reversal) through [`write`]: `work` gets the
/// connection, the context, the request's Content-Digest and the Idempotency-Key, and runs the
/// write once per key (`idempotency::once`, or `sale::record_once`). A repeat of a key that
/// another gateway is still working on is retried here every few milliseconds, up to the
/// in-flight wait, rather than waited for inside a group-commit batch.
async fn idempotent<F>(
    state: web::Data<AppState>,
    partner: PartnerCaller,
    key: String,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
    work: F,
) -> Result<HttpResponse, Problem>
where
    F: Fn(&mut crate::db::DbConn, &Ctx<'_>, &str, &Key<'_>) -> Result<Answer, TxnError>
        + Send
        + Sync
        + 'static,
{
    let request_sha256 = idempotency::sha256_hex(body);
    let digest = partner.caller.content_digest.clone().unwrap_or_default();
    let st = state.clone();
    let job = std::sync::Arc::new(move |conn: &mut crate::db::DbConn| {
        let ctx = Ctx {
            settings: &st.settings,
            keys: &st.member_keys,
            partner: &partner.code,
            now,
            registry: &partner.caller.registry,
        };
        let idem = Key {
            partner: partner.code.as_str(),
            key: &key,
            request_sha256: &request_sha256,
            retention: TimeDelta::hours(i64::from(st.settings.idempotency_retention_hours)),
            in_flight_wait_ms: 0,
        };
        work(conn, &ctx, &digest, &idem)
    });
    let deadline = std::time::Instant::now()
        + std::time::Duration::from_millis(idempotency::IN_FLIGHT_WAIT_MS);
    loop {
        let job = job.clone();
        let outcome = write(&state, move |conn| job(conn)).await?;
        match outcome {
            Err(TxnError::IdempotencyKeyInFlight) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            other => return Ok(answer(other?)),
        }
    }
}

/// `POST /v1/transactions`
pub async fn record(
    state: web::Data<AppState>,
    partner: PartnerCaller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let key = idempotency_key(&req)?;
    let request: SaleRequest = json_request(&req, &body)?;
    let now = chrono::Utc::now();
    let s = &state.settings;
    let sale = request
        .parse(now, s.max_backdate_days, s.max_txn_fen)
        .map_err(Problem::from)?;
    // A redemption consumes its member token while it is judged, and a refusal must leave the
    // token unused: so only sales that redeem nothing, whose judging writes nothing, are
    // batched (see `SaleJob::prepare`).
    if sale.redeem_points == 0 {
        if let Some(sales) = state.sales.clone() {
            return record_batched(state, sales, partner, key, &body, now, sale).await;
        }
    }
    idempotent(
        state,
        partner,
        key,
        &body,
        now,
        move |conn, ctx, digest, idem| {
            sale::record_once(conn, ctx, &sale, digest, idem, now.naive_utc())
        },
    )
    .await
}

/// What a sale handed to the PostgreSQL batcher carries (`transactions::sale_batch`).
struct SaleParts {
    state: web::Data<AppState>,
    partner: PartnerCaller,
    sale: Sale,
    key: String,
    request_sha256: String,
    digest: String,
    now: chrono::DateTime<chrono::Utc>,
}

impl SaleParts {
    fn with<R>(&self, f: impl FnOnce(&Ctx<'_>, &Key<'_>) -> R) -> R {
        let st = &self.state;
        let ctx = Ctx {
            settings: &st.settings,
            keys: &st.member_keys,
            partner: &self.partner.code,
            now: self.now,
            registry: &self.partner.caller.registry,
        };
        let idem = Key {
            partner: self.partner.code.as_str(),
            key: &self.key,
            request_sha256: &self.request_sha256,
            retention: TimeDelta::hours(i64::from(st.settings.idempotency_retention_hours)),
            // The handler retries a key held elsewhere (see `record_batched`).
            in_flight_wait_ms: 0,
        };
        f(&ctx, &idem)
    }
}

struct BatchedSale {
    parts: std::sync::Arc<SaleParts>,
    reply: tokio::sync::oneshot::Sender<Result<Answer, TxnError>>,
}

impl SaleJob for BatchedSale {
    fn identity(&self) -> (String, String) {
        let p = &self.parts;
        let partner = p.partner.code.as_str();
        (
            format!("{partner}\0{}", p.key),
            format!("{partner}\0{}", p.sale.partner_txn_id),
        )
    }

    fn member_name(&self) -> &str {
        match &self.parts.sale.member {
            MemberName::Card(card) => card.as_str(),
            MemberName::Ref(r) => r,
        }
    }

    fn prepare(&self, conn: &mut crate::db::DbConn) -> Result<Prepared, TxnError> {
        let p = &self.parts;
        p.with(|ctx, idem| {
            sale::prepare_in(
                conn,
                ctx,
                &p.sale,
                &p.digest,
                Some((idem, p.now.naive_utc())),
            )
        })
    }

    fn replay(&self, stored: StoredAnswer) -> Result<Answer, TxnError> {
        self.parts.with(|_, idem| idempotency::replay(idem, stored))
    }

    fn alone(&self, conn: &mut crate::db::DbConn) -> Result<Answer, TxnError> {
        let p = &self.parts;
        p.with(|ctx, idem| {
            sale::record_once(conn, ctx, &p.sale, &p.digest, idem, p.now.naive_utc())
        })
    }

    fn answer(self: Box<Self>, outcome: Result<Answer, TxnError>) {
        // A caller that went away (client disconnected) no longer needs the answer.
        let _ = self.reply.send(outcome);
    }
}

/// `POST /v1/transactions` on PostgreSQL: the sale goes to the batcher, which books it with
/// whatever other sales are waiting. A key that another request holds is retried here every
/// few milliseconds, up to the in-flight wait, as in [`idempotent`].
async fn record_batched(
    state: web::Data<AppState>,
    sales: SaleBatcher,
    partner: PartnerCaller,
    key: String,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
    sale: Sale,
) -> Result<HttpResponse, Problem> {
    let parts = std::sync::Arc::new(SaleParts {
        request_sha256: idempotency::sha256_hex(body),
        digest: partner.caller.content_digest.clone().unwrap_or_default(),
        state,
        partner,
        sale,
        key,
        now,
    });
    let deadline = std::time::Instant::now()
        + std::time::Duration::from_millis(idempotency::IN_FLIGHT_WAIT_MS);
    loop {
        let (reply, answered) = tokio::sync::oneshot::channel();
        let job = Box::new(BatchedSale {
            parts: parts.clone(),
            reply,
        });
        if sales.submit(job).is_err() {
            return Err(ExecutorError::Overloaded.into());
        }
        let outcome = answered
            .await
            .map_err(|_| Problem::from(ExecutorError::Lost))?;
        match outcome {
            Err(TxnError::IdempotencyKeyInFlight) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            other => return Ok(answer(other?)),
        }
    }
}

/// `POST /v1/transactions/{txn_id}/reversals`
pub async fn reverse(
    state: web::Data<AppState>,
    partner: PartnerCaller,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let txn_id = path.into_inner();
    let key = idempotency_key(&req)?;
    let request: ReversalRequest = json_request(&req, &body)?;
    let now = chrono::Utc::now();
    let s = &state.settings;
    let input = request
        .parse(now, s.max_backdate_days, s.max_txn_fen)
        .map_err(Problem::from)?;
    idempotent(
        state,
        partner,
        key,
        &body,
        now,
        move |conn, ctx, digest, idem| {
            idempotency::once(conn, idem, now.naive_utc(), |conn| {
                let receipt =
                    reversal::record(conn, ctx, Original::TxnId(&txn_id), &input, digest)?;
                Ok((201, batch::to_json(&receipt)?))
            })
        },
    )
    .await
}

/// `POST /v1/transactions/batch`
pub async fn batch(
    state: web::Data<AppState>,
    partner: PartnerCaller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let value: serde_json::Value = json_request(&req, &body)?;
    let items = batch::items(value).map_err(Problem::from)?;
    let now = chrono::Utc::now();
    let st = state.clone();
    let outcomes = blocking(&state, move || {
        let mut conn = st.pool.get().map_err(|e| Problem::internal(&e))?;
        let ctx = Ctx {
            settings: &st.settings,
            keys: &st.member_keys,
            partner: &partner.code,
            now,
            registry: &partner.caller.registry,
        };
        Ok(batch::run(&mut conn, &ctx, items))
    })
    .await?;
    let results: Vec<serde_json::Value> = outcomes
        .into_iter()
        .map(|o| match o.result {
            Ok(a) => json!({
                "index": o.index,
                "status": a.status,
                "body": serde_json::from_str::<serde_json::Value>(&a.body).unwrap_or_default(),
            }),
            Err(e) => {
                let p = Problem::from(e);
                let mut body = p.body("");
                if let Some(map) = body.as_object_mut() {
                    map.remove("request_id");
                }
                json!({ "index": o.index, "status": p.status().as_u16(), "body": body })
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "results": results })))
}

/// `GET /v1/transactions/{txn_id}`
pub async fn one(
    state: web::Data<AppState>,
    partner: PartnerCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let txn_id = path.into_inner();
    let st = state.clone();
    let view = blocking(&state, move || {
        let mut conn = st.pool.get().map_err(|e| Problem::internal(&e))?;
        read::one(&mut conn, partner.code.as_str(), &txn_id).map_err(Problem::from)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// `GET /v1/transactions?business_date=&cursor=&limit=`
pub async fn list(
    state: web::Data<AppState>,
    partner: PartnerCaller,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let query = read::ListQuery::parse(req.query_string()).map_err(Problem::from)?;
    let st = state.clone();
    let page = blocking(&state, move || {
        let mut conn = st.pool.get().map_err(|e| Problem::internal(&e))?;
        read::page(&mut conn, partner.code.as_str(), &query).map_err(Problem::from)
    })
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `POST /v1/member-tokens`
pub async fn issue_token(
    state: web::Data<AppState>,
    partner: PartnerCaller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let request: TokenRequest = json_request(&req, &body)?;
    let now = chrono::Utc::now();
    let st = state.clone();
    let issued = write(&state, move |conn| {
        let ctx = Ctx {
            settings: &st.settings,
            keys: &st.member_keys,
            partner: &partner.code,
            now,
            registry: &partner.caller.registry,
        };
        tokens::issue(conn, &ctx, &request)
    })
    .await??;
    Ok(HttpResponse::Created().json(issued))
}
