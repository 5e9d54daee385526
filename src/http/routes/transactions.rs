//! Thin handlers for the transaction endpoints: parse, run the use case on the database
//! threads, answer. The use cases live in `crate::transactions`.
use crate::http::extract::PartnerCaller;
use crate::http::problem::Code;
use crate::http::problem::{json_request, Problem};
use crate::http::AppState;
use crate::transactions::idempotency::{self, Answer};
use crate::transactions::input::{parse_idempotency_key, ReversalRequest, SaleRequest};
use crate::transactions::record::{self, Context};
use crate::transactions::tokens::TokenRequest;
use crate::transactions::{batch, read, TxnError};
use crate::transactions::{Idempotent, ReversalOf};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use std::sync::Arc;

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
            TxnError::Db(cause) => Problem::from(cause),
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

/// What a write use case needs of the request and the gateway.
fn context(
    state: &AppState,
    partner: &PartnerCaller,
    now: chrono::DateTime<chrono::Utc>,
) -> Arc<Context> {
    Arc::new(Context {
        settings: state.settings.clone(),
        keys: state.member_keys.clone(),
        partner: partner.code.clone(),
        now,
        registry: partner.caller.registry.clone(),
    })
}

/// The request's Idempotency-Key, its body's SHA-256 and its Content-Digest.
fn idempotent(partner: &PartnerCaller, key: String, body: &[u8]) -> Idempotent {
    Idempotent {
        key,
        request_sha256: idempotency::sha256_hex(body),
        request_digest: partner.caller.content_digest.clone().unwrap_or_default(),
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
    let now = state.clock.now();
    let s = &state.settings;
    let sale = request.parse(now, s.max_backdate_days, s.max_txn_fen)?;
    let idem = idempotent(&partner, key, &body);
    let cx = context(&state, &partner, now);
    Ok(answer(
        record::record_sale(&state.store, cx, sale, idem).await?,
    ))
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
    let now = state.clock.now();
    let s = &state.settings;
    let input = request.parse(now, s.max_backdate_days, s.max_txn_fen)?;
    let idem = idempotent(&partner, key, &body);
    let cx = context(&state, &partner, now);
    let of = ReversalOf::TxnId(txn_id);
    Ok(answer(
        record::record_reversal(&state.store, cx, of, input, idem).await?,
    ))
}

/// `POST /v1/transactions/batch`
pub async fn batch(
    state: web::Data<AppState>,
    partner: PartnerCaller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let value: serde_json::Value = json_request(&req, &body)?;
    let items = batch::items(value)?;
    let cx = context(&state, &partner, state.clock.now());
    let outcomes = record::record_batch(&state.store, cx, items).await;
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
    let view = state
        .store
        .read(move |conn| read::one(conn, partner.code.as_str(), &txn_id))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// `GET /v1/transactions?business_date=&cursor=&limit=`
pub async fn list(
    state: web::Data<AppState>,
    partner: PartnerCaller,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let query = read::ListQuery::parse(req.query_string())?;
    let page = state
        .store
        .read(move |conn| read::page(conn, partner.code.as_str(), &query))
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
    let cx = context(&state, &partner, state.clock.now());
    let issued = record::issue_token(&state.store, cx, request).await?;
    Ok(HttpResponse::Created().json(issued))
}
