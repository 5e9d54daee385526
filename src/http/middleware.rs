//! The signed-API middleware: every request's caller is checked (certificate first, before its
//! body is read; then, with the body read within its limits, the signature and the nonce), and
//! every response — problems included — is stamped with a request id, a Content-Digest and the
//! gateway's signature. A handler that panics is answered 500, never with a dropped connection.
use super::body::{BodyError, BodyReader, GRACE_MS};
use super::problem::Code;
use super::problem::{Problem, PROBLEM_JSON};
use super::{body_limit, AppState};
use crate::auth::{self, Caller, PeerCertificate, RequestView};
use crate::http::admission::AdmissionError;
use crate::monitoring as metrics;
use crate::registry::CacheOnly;
use crate::signature::digest::content_digest;
use crate::signature::sign::sign_response;
use crate::store::NonceClaim;
use actix_web::body::{to_bytes, BoxBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};
use bytes::Bytes;
use futures_util::FutureExt;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Owned copies of what the checks need, so they can run on a blocking thread.
struct OwnedView {
    method: String,
    path: String,
    query: Option<String>,
    authority: Option<String>,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl OwnedView {
    fn of(req: &ServiceRequest, body: Bytes) -> Self {
        let uri = req.uri();
        OwnedView {
            method: req.method().as_str().to_owned(),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            authority: req
                .headers()
                .get("host")
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned),
            headers: req
                .headers()
                .iter()
                // A value with bytes outside visible ASCII (obs-text) is kept, lossily: a
                // Signature-Input carrying one is then an unparseable header
                // (`invalid-signature`), not a missing one; and a covered header carrying one
                // makes a signature base that no honest signer produced.
                .map(|(n, v)| {
                    let v = match v.to_str() {
                        Ok(v) => v.to_owned(),
                        Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    };
                    (n.as_str().to_owned(), v)
                })
                .collect(),
            body,
        }
    }

    fn view(&self) -> RequestView<'_> {
        RequestView {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            authority: self.authority.as_deref(),
            headers: self
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect(),
            body: &self.body,
        }
    }
}

/// A refusal, with the request signature to bind the answer to when it did verify.
type Refusal = (Problem, Option<(String, String)>);

/// Requests that write anyway: a sale, a reversal, a member token. Their nonce may be claimed
/// with other requests' (`Store::claim_nonce`). (A batch's items each take a transaction of
/// their own.)
fn writes_anyway(method: &str, path: &str) -> bool {
    let reversal = path.starts_with("/v1/transactions/") && path.ends_with("/reversals");
    method == "POST" && (path == "/v1/transactions" || reversal || path == "/v1/member-tokens")
}

/// The largest body whose checks run on the async worker: a single request's (64 KiB, whose
/// digest takes a fraction of a millisecond). A batch or an upload (up to 4 MiB) is digested on
/// a database thread, so that it never holds up the other connections of its worker.
const MAX_BODY_CHECKED_ON_WORKER_BYTES: usize = super::MAX_BODY_BYTES;

async fn authenticate(
    state: &AppState,
    peer: Option<PeerCertificate>,
    owned: OwnedView,
) -> Result<Caller, Refusal> {
    let now = state.clock.now();
    // Only a request that writes anyway has its nonce claimed with others' (see
    // `Store::claim_nonce`); a read-only one (verify) claims it in a statement of its own.
    let with_others = writes_anyway(&owned.method, &owned.path);
    // Checked against the cached registry, then confirmed (see `auth::Stage`). The checks run
    // here, on the async worker, when the cache holds every row they need
    // (`auth::check_cache_only`) and the body is a single request's; else on a database
    // thread, which claims the nonce too unless it is claimed with others'.
    let first = (owned.body.len() <= MAX_BODY_CHECKED_ON_WORKER_BYTES)
        .then(|| auth::check_cache_only(&state.registry, peer.as_ref(), &owned.view(), now))
        .flatten();
    let (stage, peer, owned) = match first {
        Some(stage) => (Ok(stage), peer, owned),
        None => {
            let registry = state.registry.clone();
            state
                .store
                .read(move |conn| {
                    let stage = auth::check_cached(
                        conn,
                        &registry,
                        peer.as_ref(),
                        &owned.view(),
                        now,
                        with_others,
                    );
                    Ok::<_, crate::db::DbError>((stage, peer, owned))
                })
                .await
                .map_err(|e| (Problem::from(e), None))?
        }
    };
    let stage = match stage {
        Ok(auth::Stage::ToClaim(pending)) => {
            let claim = NonceClaim::from(&pending.new_nonce());
            state
                .store
                .claim_nonce(claim, with_others)
                .await
                .map_err(auth::AuthError::from)
                .map(|(fresh, generation)| pending.after_claim(fresh, generation))
        }
        other => other,
    };
    let outcome = match stage {
        Ok(auth::Stage::Final(answer)) => answer,
        Ok(auth::Stage::Confirm(unconfirmed)) => {
            // Rare: the registry changed since the cache was filled, or a refusal (or an
            // unsigned read) has to read the generation itself.
            let registry = state.registry.clone();
            state
                .store
                .read(move |conn| {
                    Ok::<_, crate::db::DbError>(auth::confirm(
                        conn,
                        &registry,
                        peer.as_ref(),
                        &owned.view(),
                        now,
                        unconfirmed,
                    ))
                })
                .await
                .map_err(|e| (Problem::from(e), None))?
        }
        // Every nonce left to claim was claimed just above.
        Ok(auth::Stage::ToClaim(_)) => Err(auth::AuthError::Db(crate::db::DbError::Invariant(
            "a nonce was left unclaimed".into(),
        ))),
        Err(e) => Err(e),
    };
    outcome.map_err(|e| {
        metrics::record_auth_failure(super::problem::auth_code(&e).as_str());
        let bound = e.bound_signature();
        (Problem::from(e), bound)
    })
}

pub async fn signed_api(
    mut req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!(
        "request",
        request.id = %request_id,
        http.method = %req.method(),
        http.route = %route,
        caller.identity = tracing::field::Empty,
        http.status = tracing::field::Empty,
    );
    let Some(state) = req
        .app_data::<web::Data<AppState>>()
        .map(|d| d.get_ref().clone())
    else {
        return Err(actix_web::error::ErrorInternalServerError(
            "application state missing",
        ));
    };

    // This request's place among those its worker works on at once (`http::admission`),
    // held until its answer is signed.
    let mut turn = None;
    let head_read_at = tokio::time::Instant::now();
    let outcome = async {
        // Rate limits first, keyed on the certificate's identity (which TLS vouched for), so a
        // flood costs neither a body read nor a database round trip, and writes nothing.
        if let Some(refusal) = rate_limited(&state, &req) {
            let refusal = before_body(&req, refusal);
            return Err((req, (refusal, None)));
        }
        let peer = req.conn_data::<PeerCertificate>().cloned();
        // The certificate before the body: a caller the registry refuses (suspended, revoked,
        // removed) is answered without a byte of its body read.
        if let Err(p) = precheck_certificate(&state, peer.as_ref()).await {
            let p = before_body(&req, p);
            return Err((req, (p, None)));
        }
        if let Some(p) = repeated_header(&req) {
            let p = before_body(&req, p);
            return Err((req, (p, None)));
        }
        let body = match read_body(&state, &mut req, peer.as_ref(), head_read_at).await {
            Ok(b) => b,
            Err(p) => return Err((req, (p, None))),
        };
        // After the body, so that a slow sender holds no place.
        match state.admission.turn().await {
            Ok(t) => turn = Some(t),
            Err(e) => return Err((req, (overloaded(&e), None))),
        }
        let owned = OwnedView::of(&req, body.clone());
        let caller = match authenticate(&state, peer, owned).await {
            Ok(c) => c,
            Err(refusal) => return Err((req, refusal)),
        };
        tracing::Span::current()
            .record("caller.identity", tracing::field::display(&caller.identity));
        req.extensions_mut().insert(caller.clone());
        req.set_payload(actix_web::dev::Payload::from(body));
        Ok((caller, next.call(req).await))
    }
    .instrument(span.clone());
    // A panic anywhere in the checks or the handler is a bug; the caller still gets an answer
    // (a signed 500) and the worker goes on serving its other connections.
    let outcome = match std::panic::AssertUnwindSafe(outcome).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            drop(turn);
            metrics::record_panic();
            span.in_scope(|| {
                tracing::error!(
                    panic.message = panic_message(&panic),
                    "request handling panicked"
                )
            });
            metrics::record_request(&route, 500, started.elapsed().as_secs_f64());
            let problem =
                Problem::new(Code::Internal, "the gateway could not complete the request");
            let res = signed_problem(&state, &request_id, None, &problem).await;
            return Err(actix_web::error::InternalError::from_response(
                "request handling panicked",
                res,
            )
            .into());
        }
    };

    let res = match outcome {
        Err((req, (problem, bound))) => {
            req.into_response(signed_problem(&state, &request_id, bound, &problem).await)
        }
        Ok((caller, Ok(res))) => {
            let (http_req, res) = res.into_parts();
            let bound = (!caller.signature_label.is_empty()).then(|| {
                (
                    caller.signature_label.clone(),
                    caller.signature_value.clone(),
                )
            });
            let res = finish(&state, &request_id, bound, res).await;
            ServiceResponse::new(http_req, res)
        }
        // Only an inner middleware could fail this way, and there is none; pass it on.
        Ok((_, Err(e))) => return Err(e),
    };
    // Signed: the next request in line may go while this answer is written.
    drop(turn);
    let status = res.status().as_u16();
    span.record("http.status", status);
    metrics::record_request(&route, status, started.elapsed().as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            http.status = status,
            latency_ms = started.elapsed().as_millis() as u64,
            "request done"
        )
    });
    Ok(res)
}

/// A refusal as a signed answer, bound to the request's signature when it verified.
async fn signed_problem(
    state: &AppState,
    request_id: &str,
    bound: Option<(String, String)>,
    problem: &Problem,
) -> HttpResponse {
    finish(
        state,
        request_id,
        bound,
        problem.error_response_with_id(request_id),
    )
    .await
}

/// What a panic carried, for the log.
fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// The certificate's registry check, before anything of the body is read: against the cached
/// registry when it holds the rows and lets the caller in; otherwise (a row not cached, or a
/// refusal, which may be the cache's stale view) against the registry as it is now.
async fn precheck_certificate(
    state: &AppState,
    peer: Option<&PeerCertificate>,
) -> Result<(), Problem> {
    let now = state.clock.now();
    if let Some(view) = state.registry.cached_view() {
        if auth::check_certificate(&mut CacheOnly, &view, peer, now).is_ok() {
            return Ok(());
        }
    }
    check_certificate_now(state, peer.cloned()).await
}

/// The certificate's registry check against the registry as it is now, on a database thread.
async fn check_certificate_now(
    state: &AppState,
    peer: Option<PeerCertificate>,
) -> Result<(), Problem> {
    let registry = state.registry.clone();
    let now = state.clock.now();
    let checked = state
        .store
        .read(move |conn| {
            let view = registry.current(conn)?;
            auth::check_certificate(conn, &view, peer.as_ref(), now)
        })
        .await;
    checked.map(|_| ()).map_err(|e| {
        metrics::record_auth_failure(super::problem::auth_code(&e).as_str());
        Problem::from(e)
    })
}

/// Headers that the contract reads as one value. Sent twice, they are not joined: the
/// signature would cover both lines while a handler read one.
const SINGLE_VALUED: [&str; 5] = [
    "idempotency-key",
    "content-digest",
    "content-type",
    "signature-input",
    "signature",
];

/// `malformed-request` for a single-valued header sent more than once.
fn repeated_header(req: &ServiceRequest) -> Option<Problem> {
    let name = SINGLE_VALUED
        .iter()
        .find(|name| req.headers().get_all(**name).nth(1).is_some())?;
    Some(Problem::new(
        Code::MalformedRequest,
        format!("the {name} header is sent more than once; it takes one value"),
    ))
}

/// Reads the body within its route's limit and the body deadline (counted from `head_read_at`).
/// A body still arriving [`GRACE_MS`] after it was first waited for is slow: its caller's certificate is checked again
/// against the current registry, and it holds one of its identity's places for slow bodies
/// until it is read (`http::body`). A refusal mid-body closes the connection, so no unread rest
/// is taken for a next request.
async fn read_body(
    state: &AppState,
    req: &mut ServiceRequest,
    peer: Option<&PeerCertificate>,
    head_read_at: tokio::time::Instant,
) -> Result<Bytes, Problem> {
    let limit = body_limit(req.path());
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(body_problem(BodyError::TooLarge(limit), state));
    }
    let mut reader = BodyReader::new(req.take_payload(), limit);
    let deadline = head_read_at + Duration::from_millis(u64::from(state.settings.body_timeout_ms));
    // The grace counts from when the body is first waited for, not from the head: the
    // certificate's check before it may have waited for the database.
    let grace = (tokio::time::Instant::now() + Duration::from_millis(GRACE_MS)).min(deadline);
    if reader
        .read_until(grace)
        .await
        .map_err(|e| body_problem(e, state))?
    {
        return Ok(reader.into_bytes());
    }
    check_certificate_now(state, peer.cloned())
        .await
        .map_err(closing)?;
    let identity = peer
        .and_then(|p| p.identity.as_ref().ok())
        .map(|i| i.urn())
        .unwrap_or_default();
    let Some(_place) = state.slow_bodies.take(&identity) else {
        metrics::record_slow_body("refused");
        let mut p = Problem::new(
            Code::RateLimited,
            format!(
                "this identity is already sending {} request bodies slowly; finish those first",
                state.settings.max_slow_bodies_per_identity
            ),
        );
        p.retry_after_s = Some(1);
        return Err(closing(p));
    };
    match reader.read_until(deadline).await {
        Ok(true) => {
            metrics::record_slow_body("read");
            Ok(reader.into_bytes())
        }
        Ok(false) => {
            metrics::record_slow_body("timed_out");
            Err(body_problem(BodyError::TimedOut, state))
        }
        Err(e) => Err(body_problem(e, state)),
    }
}

/// The problem for a body that could not be read; the connection is closed after it.
fn body_problem(e: BodyError, state: &AppState) -> Problem {
    closing(match e {
        BodyError::TooLarge(limit) => Problem::new(
            Code::PayloadTooLarge,
            format!("the body is larger than {limit} bytes"),
        ),
        BodyError::TimedOut => Problem::new(
            Code::RequestTimeout,
            format!(
                "the body did not arrive within {} ms",
                state.settings.body_timeout_ms
            ),
        ),
        BodyError::Unreadable(e) => {
            Problem::new(Code::MalformedRequest, format!("cannot read the body: {e}"))
        }
    })
}

/// A refusal made before the body was read: the connection is closed after it if a body was
/// coming, so that its unread rest is never taken for a next request.
fn before_body(req: &ServiceRequest, p: Problem) -> Problem {
    let headers = req.headers();
    let body_coming = headers.contains_key(actix_web::http::header::TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if body_coming {
        closing(p)
    } else {
        p
    }
}

fn closing(mut p: Problem) -> Problem {
    p.close_connection = true;
    p
}

/// The refusal for a request that found its worker's queue full: nothing was read from the
/// database or written to it.
fn overloaded(e: &AdmissionError) -> Problem {
    metrics::record_admission_refused();
    // Counted, and logged only at debug: under overload a line per refusal would add to it.
    tracing::debug!(error.message = %e, "request refused: admission queue full");
    let mut p = Problem::overloaded();
    p.retry_after_s = Some(1);
    p
}

/// The refusal for a caller over its rate limit, if it is.
fn rate_limited(state: &AppState, req: &ServiceRequest) -> Option<Problem> {
    let peer = req.conn_data::<PeerCertificate>()?;
    let identity = peer.identity.as_ref().ok()?;
    let retry_after_s = state.rate_limits.check(&identity.urn()).err()?;
    metrics::record_rate_limited(&identity.key_id_prefix(), "requests");
    let mut p = Problem::new(
        Code::RateLimited,
        "too many requests from this certificate's identity; retry later",
    );
    p.retry_after_s = Some(retry_after_s);
    Some(p)
}

impl Problem {
    fn error_response_with_id(&self, request_id: &str) -> HttpResponse {
        let mut res = HttpResponse::build(self.status());
        if let Some(s) = self.retry_after_s {
            res.insert_header(("retry-after", s.to_string()));
        }
        if self.close_connection {
            res.force_close();
        }
        res.content_type(PROBLEM_JSON)
            .body(self.body(request_id).to_string())
    }
}

/// Turns any response into a signed one: bare error statuses become problems, problems get
/// the request id, and the gateway signs (bound to the request signature when verified).
async fn finish(
    state: &AppState,
    request_id: &str,
    bound: Option<(String, String)>,
    res: HttpResponse,
) -> HttpResponse {
    let (head, body) = res.into_parts();
    let status = head.status();
    let content_type = head
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = match to_bytes(body).await {
        Ok(b) => b,
        Err(e) => {
            let p = Problem::internal(&format!("response body: {e}"));
            return sign(
                state,
                request_id,
                bound,
                p.status(),
                PROBLEM_JSON,
                Bytes::from(p.body(request_id).to_string()),
                None,
            )
            .await;
        }
    };
    let (content_type, bytes) = match content_type.as_deref() {
        Some(PROBLEM_JSON) => (
            PROBLEM_JSON.to_owned(),
            stamp_request_id(&bytes, request_id),
        ),
        _ if status.is_client_error() || status.is_server_error() => {
            let p = Problem::for_status(status);
            (
                PROBLEM_JSON.to_owned(),
                Bytes::from(p.body(request_id).to_string()),
            )
        }
        Some(ct) => (ct.to_owned(), bytes),
        None => ("application/json".to_owned(), bytes),
    };
    sign(
        state,
        request_id,
        bound,
        status,
        &content_type,
        bytes,
        Some(head),
    )
    .await
}

fn stamp_request_id(bytes: &Bytes, request_id: &str) -> Bytes {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.insert(
                "request_id".into(),
                serde_json::Value::String(request_id.to_owned()),
            );
            Bytes::from(serde_json::Value::Object(map).to_string())
        }
        _ => bytes.clone(),
    }
}

async fn sign(
    state: &AppState,
    request_id: &str,
    bound: Option<(String, String)>,
    status: actix_web::http::StatusCode,
    content_type: &str,
    bytes: Bytes,
    head: Option<HttpResponse<()>>,
) -> HttpResponse {
    let digest = content_digest(&bytes);
    let created = state.clock.now().timestamp();
    let mut res = match head {
        Some(h) => h.set_body(BoxBody::new(bytes)),
        None => HttpResponse::build(status).body(bytes),
    };
    let headers = res.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set("content-type", content_type);
    set("content-digest", &digest);
    set("x-request-id", request_id);
    match sign_response(
        &state.gateway_key,
        &state.gateway_key_id,
        created,
        status.as_u16(),
        content_type,
        &digest,
        bound.as_ref().map(|(l, v)| (l.as_str(), v.as_str())),
    ) {
        Ok(sig) => {
            set("signature-input", &sig.signature_input);
            set("signature", &sig.signature);
        }
        // Cannot happen with well-formed labels; answer unsigned rather than not at all.
        Err(e) => tracing::error!(error.message = %e, "response signing failed"),
    }
    res.map_into_boxed_body()
}

#[cfg(test)]
mod tests {
    use super::writes_anyway;

    #[test]
    fn only_requests_that_write_through_the_writer_send_their_nonce_there() {
        assert!(writes_anyway("POST", "/v1/transactions"));
        assert!(writes_anyway("POST", "/v1/transactions/txn_abc/reversals"));
        assert!(writes_anyway("POST", "/v1/member-tokens"));
        assert!(!writes_anyway("POST", "/v1/transactions/batch"));
        assert!(!writes_anyway("GET", "/v1/transactions"));
        assert!(!writes_anyway("GET", "/v1/transactions/txn_abc"));
        assert!(!writes_anyway("POST", "/v1/members/verify"));
    }
}
