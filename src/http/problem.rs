//! RFC 9457 problem details with the contract's codes (section 4).
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Map, Value};

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub extra: Map<String, Value>,
    /// Sent as `Retry-After` (429, 503).
    pub retry_after_s: Option<u64>,
}

/// A short, fixed title per code.
fn title(code: &str) -> &'static str {
    match code {
        "malformed-request" => "Malformed request",
        "invalid-content-digest" => "Invalid Content-Digest",
        "missing-signature" => "Missing signature",
        "invalid-signature" => "Invalid signature",
        "unknown-key" => "Unknown key",
        "replayed-request" => "Replayed request",
        "clock-skew" => "Clock skew",
        "signature-expired" => "Signature expired",
        "key-identity-mismatch" => "Key does not belong to this identity",
        "partner-suspended" => "Partner suspended",
        "certificate-not-active" => "Certificate not active",
        "forbidden" => "Forbidden",
        "member-not-found" => "Member not found",
        "transaction-not-found" => "Transaction not found",
        "statement-not-found" => "Statement not found",
        "not-found" => "Not found",
        "method-not-allowed" => "Method not allowed",
        "unsupported-media-type" => "Unsupported media type",
        "payload-too-large" => "Payload too large",
        "validation-failed" => "Validation failed",
        "rate-limited" => "Rate limited",
        "member-inactive" => "Member inactive",
        "member-authentication-required" => "Member authentication required",
        "offer-rule-violation" => "Offer rule violation",
        "insufficient-points" => "Insufficient points",
        "duplicate-partner-txn-id" => "Duplicate partner_txn_id",
        "duplicate-partner-reversal-id" => "Duplicate partner_reversal_id",
        "idempotency-key-reused" => "Idempotency-Key reused",
        "idempotency-key-in-flight" => "Idempotency-Key in flight",
        "reversal-exceeds-original" => "Reversal exceeds original",
        "day-not-closed" => "Day not closed",
        "service-unavailable" => "Service unavailable",
        _ => "Internal error",
    }
}

impl Problem {
    pub fn new(status: u16, code: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            detail: detail.into(),
            extra: Map::new(),
            retry_after_s: None,
        }
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    /// 500 with no internals in the body; the cause goes to the log only.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error.message = %cause, "internal error");
        Problem::new(
            500,
            "internal",
            "the gateway could not complete the request",
        )
    }

    pub fn validation(errors: Value) -> Self {
        Problem::new(422, "validation-failed", "the request is not valid").with("errors", errors)
    }

    /// The problem for a bare error status, when something answered without a body.
    pub fn for_status(status: StatusCode) -> Self {
        let (code, detail) = match status.as_u16() {
            400 => ("malformed-request", "the request is malformed"),
            404 => ("not-found", "no such resource"),
            405 => (
                "method-not-allowed",
                "this resource does not accept that method",
            ),
            413 => ("payload-too-large", "the body is too large"),
            415 => (
                "unsupported-media-type",
                "the Content-Type is not accepted here",
            ),
            429 => ("rate-limited", "too many requests"),
            503 => ("service-unavailable", "the gateway is not ready"),
            _ => ("internal", "the gateway could not complete the request"),
        };
        let mut p = Problem::new(status.as_u16(), code, detail);
        p.status = status;
        p
    }

    pub fn body(&self, request_id: &str) -> Value {
        let mut body = json!({
            "type": format!("urn:alliance:problem:{}", self.code),
            "title": title(self.code),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
            "request_id": request_id,
        });
        if let Value::Object(map) = &mut body {
            for (k, v) in &self.extra {
                map.insert(k.clone(), v.clone());
            }
        }
        body
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

/// The request id is stamped in by the signed-API middleware, which knows it.
impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if let Some(s) = self.retry_after_s {
            res.insert_header(("retry-after", s.to_string()));
        }
        res.content_type(PROBLEM_JSON)
            .body(self.body("").to_string())
    }
}

impl From<crate::auth::AuthError> for Problem {
    fn from(e: crate::auth::AuthError) -> Self {
        match &e {
            crate::auth::AuthError::Db(cause) => Problem::internal(cause),
            _ => Problem::new(e.status(), e.code(), e.to_string()),
        }
    }
}

/// Errors of actix's own JSON extractor, as problems.
pub fn json_error(err: actix_web::error::JsonPayloadError) -> Problem {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::ContentType => Problem::new(
            415,
            "unsupported-media-type",
            "Content-Type must be application/json",
        ),
        E::Overflow { .. } | E::OverflowKnownLength { .. } => {
            Problem::new(413, "payload-too-large", "the body is too large")
        }
        E::Deserialize(e) if e.is_data() => Problem::validation(json!([{
            "field": field_of(&e.to_string()),
            "message": e.to_string(),
        }])),
        E::Deserialize(e) => Problem::new(
            400,
            "malformed-request",
            format!("the body is not valid JSON: {e}"),
        ),
        other => Problem::new(400, "malformed-request", other.to_string()),
    }
}

/// serde's messages name the field in backticks: "unknown field `x`", "missing field `y`".
fn field_of(message: &str) -> String {
    message
        .split('`')
        .nth(1)
        .map(str::to_owned)
        .unwrap_or_default()
}
