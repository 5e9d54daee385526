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
    /// Close the connection after this answer: the request's body was left unread.
    pub close_connection: bool,
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
        "request-timeout" => "Request timeout",
        "upload-quota-exceeded" => "Upload quota exceeded",
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
            close_connection: false,
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

    /// 503: the gateway has more work queued than it takes on (its database queue, or a
    /// worker's admission queue). Nothing was done for the request.
    pub fn overloaded() -> Self {
        Problem::new(
            503,
            "service-unavailable",
            "the gateway is overloaded; retry shortly",
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
        // The extractor does not know the field's path: only a missing or unknown field's name.
        E::Deserialize(e) if e.is_data() => data_error("", &e),
        E::Deserialize(e) => malformed(&e),
        other => Problem::new(400, "malformed-request", other.to_string()),
    }
}

/// The request's body as JSON of type `T`: `unsupported-media-type` (415) unless the
/// Content-Type is application/json, then as [`json_body`]. Handlers take the raw bytes (the
/// signature layer has read and limited them already; idempotency compares them byte for byte)
/// rather than actix's JSON extractor, whose errors cannot name a field by its path.
pub fn json_request<T: serde::de::DeserializeOwned>(
    req: &actix_web::HttpRequest,
    body: &[u8],
) -> Result<T, Problem> {
    let json = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(json_error(actix_web::error::JsonPayloadError::ContentType));
    }
    json_body(body)
}

/// A body of type `T` from JSON (the caller checked the Content-Type), its errors as problems:
/// not JSON at all is `malformed-request` (400); JSON of the wrong shape is `validation-failed`
/// (422) naming the field by its path (`items[3].gross_fen`).
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            data_error(&path, &inner)
        } else {
            malformed(&inner)
        }
    })?;
    // Trailing characters after the value are a syntax error too.
    de.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

fn malformed(e: &serde_json::Error) -> Problem {
    // A syntax error's message names only what was expected and where, never the input.
    Problem::new(
        400,
        "malformed-request",
        format!("the body is not valid JSON: {e}"),
    )
}

/// A `validation-failed` problem for JSON of the wrong shape. serde's own message repeats the
/// offending value ("invalid type: integer `8800123456`, expected a string"), and that value
/// can be a card number or a phone number sent as a number: the contract never lets member data
/// leave the gateway, in a problem or anywhere else. So the message keeps only what was
/// expected, and the field is named by its path, never by a value.
fn data_error(path: &str, e: &serde_json::Error) -> Problem {
    let raw = e.to_string();
    let (field, message) = crate::json_shape::describe(path, &raw);
    Problem::validation(json!([{ "field": field, "message": message }]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem_of<T: serde::de::DeserializeOwned + std::fmt::Debug>(body: &str) -> Value {
        json_body::<T>(body.as_bytes()).unwrap_err().body("r")
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        card_no: String,
        gross_fen: i64,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Batch {
        items: Vec<Item>,
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_by_its_field_and_never_repeated() {
        let p = problem_of::<Item>(r#"{"card_no":8800123456,"gross_fen":1}"#);
        assert_eq!(p["code"], "validation-failed");
        assert_eq!(p["errors"][0]["field"], "card_no");
        assert_eq!(p["errors"][0]["message"], "wrong type: expected a string");
        assert!(!p.to_string().contains("8800123456"), "{p}");
        let p = problem_of::<Item>(r#"{"card_no":"8800123456","gross_fen":"13800138000"}"#);
        assert_eq!(p["errors"][0]["field"], "gross_fen");
        assert!(!p.to_string().contains("13800138000"), "{p}");
    }

    #[test]
    fn nested_fields_are_named_by_their_path() {
        let p = problem_of::<Batch>(
            r#"{"items":[{"card_no":"1","gross_fen":1},{"card_no":"2","gross_fen":1.5}]}"#,
        );
        assert_eq!(p["errors"][0]["field"], "items[1].gross_fen");
        assert!(!p.to_string().contains("1.5"), "{p}");
        let p = problem_of::<Batch>(r#"{"items":[{"card_no":"1"}]}"#);
        assert_eq!(p["errors"][0]["field"], "items[0].gross_fen");
        assert_eq!(p["errors"][0]["message"], "missing field `gross_fen`");
        let p = problem_of::<Item>(r#"{"card_no":"1","gross_fen":1,"extra":true}"#);
        assert_eq!(p["errors"][0]["field"], "extra");
    }

    #[test]
    fn not_json_is_malformed() {
        let p = problem_of::<Item>(r#"{"card_no":"#);
        assert_eq!(p["code"], "malformed-request");
        let p = problem_of::<Item>(r#"{"card_no":"1","gross_fen":1} trailing"#);
        assert_eq!(p["code"], "malformed-request");
    }
}
