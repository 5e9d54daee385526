//! RFC 9457 problem details with the contract's codes (section 4).
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Map, Value};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Declares [`Code`] from one table: each code's variant, its name in `urn:alliance:problem:`,
/// its HTTP status and its title.
macro_rules! codes {
    ($($variant:ident = ($name:literal, $status:literal, $title:literal),)*) => {
        /// Every problem code the gateway answers with (contract section 4, and the ones it
        /// adds). A typo is a compile error, never an "Internal error" title.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as it appears in `code` and in the `type` URN.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }

            pub fn status(self) -> StatusCode {
                let status: u16 = match self {
                    $(Code::$variant => $status,)*
                };
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }

            /// A short, fixed title.
            pub fn title(self) -> &'static str {
                match self {
                    $(Code::$variant => $title,)*
                }
            }
        }
    };
}

codes! {
    MalformedRequest = ("malformed-request", 400, "Malformed request"),
    InvalidContentDigest = ("invalid-content-digest", 400, "Invalid Content-Digest"),
    MissingSignature = ("missing-signature", 401, "Missing signature"),
    InvalidSignature = ("invalid-signature", 401, "Invalid signature"),
    UnknownKey = ("unknown-key", 401, "Unknown key"),
    ReplayedRequest = ("replayed-request", 401, "Replayed request"),
    ClockSkew = ("clock-skew", 401, "Clock skew"),
    SignatureExpired = ("signature-expired", 401, "Signature expired"),
    KeyIdentityMismatch = ("key-identity-mismatch", 403, "Key does not belong to this identity"),
    PartnerSuspended = ("partner-suspended", 403, "Partner suspended"),
    CertificateNotActive = ("certificate-not-active", 403, "Certificate not active"),
    Forbidden = ("forbidden", 403, "Forbidden"),
    MemberNotFound = ("member-not-found", 404, "Member not found"),
    TransactionNotFound = ("transaction-not-found", 404, "Transaction not found"),
    StatementNotFound = ("statement-not-found", 404, "Statement not found"),
    NotFound = ("not-found", 404, "Not found"),
    MethodNotAllowed = ("method-not-allowed", 405, "Method not allowed"),
    RequestTimeout = ("request-timeout", 408, "Request timeout"),
    DuplicatePartnerTxnId = ("duplicate-partner-txn-id", 409, "Duplicate partner_txn_id"),
    DuplicatePartnerReversalId = ("duplicate-partner-reversal-id", 409, "Duplicate partner_reversal_id"),
    IdempotencyKeyInFlight = ("idempotency-key-in-flight", 409, "Idempotency-Key in flight"),
    PayloadTooLarge = ("payload-too-large", 413, "Payload too large"),
    UnsupportedMediaType = ("unsupported-media-type", 415, "Unsupported media type"),
    ValidationFailed = ("validation-failed", 422, "Validation failed"),
    OfferRuleViolation = ("offer-rule-violation", 422, "Offer rule violation"),
    InsufficientPoints = ("insufficient-points", 422, "Insufficient points"),
    MemberInactive = ("member-inactive", 422, "Member inactive"),
    MemberAuthenticationRequired = ("member-authentication-required", 422, "Member authentication required"),
    IdempotencyKeyReused = ("idempotency-key-reused", 422, "Idempotency-Key reused"),
    ReversalExceedsOriginal = ("reversal-exceeds-original", 422, "Reversal exceeds original"),
    DayNotClosed = ("day-not-closed", 422, "Day not closed"),
    UploadQuotaExceeded = ("upload-quota-exceeded", 422, "Upload quota exceeded"),
    RateLimited = ("rate-limited", 429, "Rate limited"),
    Internal = ("internal", 500, "Internal error"),
    ServiceUnavailable = ("service-unavailable", 503, "Service unavailable"),
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub code: Code,
    pub detail: String,
    pub extra: Map<String, Value>,
    /// Sent as `Retry-After` (429, 503).
    pub retry_after_s: Option<u64>,
    /// Close the connection after this answer: the request's body was left unread.
    pub close_connection: bool,
}

impl Problem {
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Problem {
            code,
            detail: detail.into(),
            extra: Map::new(),
            retry_after_s: None,
            close_connection: false,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    /// 500 with no internals in the body; the cause goes to the log only.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error.message = %cause, "internal error");
        Problem::new(Code::Internal, "the gateway could not complete the request")
    }

    /// 503: the gateway has more work queued than it takes on (its database queue, or a
    /// worker's admission queue). Nothing was done for the request.
    pub fn overloaded() -> Self {
        Problem::new(
            Code::ServiceUnavailable,
            "the gateway is overloaded; retry shortly",
        )
    }

    pub fn validation(errors: Value) -> Self {
        Problem::new(Code::ValidationFailed, "the request is not valid").with("errors", errors)
    }

    /// The problem for a bare error status, when something answered without a body.
    pub fn for_status(status: StatusCode) -> Self {
        let (code, detail) = match status.as_u16() {
            400 => (Code::MalformedRequest, "the request is malformed"),
            404 => (Code::NotFound, "no such resource"),
            405 => (
                Code::MethodNotAllowed,
                "this resource does not accept that method",
            ),
            408 => (Code::RequestTimeout, "the request did not arrive in time"),
            413 => (Code::PayloadTooLarge, "the body is too large"),
            415 => (
                Code::UnsupportedMediaType,
                "the Content-Type is not accepted here",
            ),
            429 => (Code::RateLimited, "too many requests"),
            503 => (Code::ServiceUnavailable, "the gateway is not ready"),
            // Another client error the framework answered bare (411, say): the request's form.
            s if (400..500).contains(&s) => (Code::MalformedRequest, "the request is malformed"),
            _ => (Code::Internal, "the gateway could not complete the request"),
        };
        Problem::new(code, detail)
    }

    pub fn body(&self, request_id: &str) -> Value {
        let mut body = json!({
            "type": format!("urn:alliance:problem:{}", self.code.as_str()),
            "title": self.code.title(),
            "status": self.status().as_u16(),
            "detail": self.detail,
            "code": self.code.as_str(),
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
        write!(
            f,
            "{} {}: {}",
            self.status().as_u16(),
            self.code.as_str(),
            self.detail
        )
    }
}

/// The request id is stamped in by the signed-API middleware, which knows it.
impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status());
        if let Some(s) = self.retry_after_s {
            res.insert_header(("retry-after", s.to_string()));
        }
        res.content_type(PROBLEM_JSON)
            .body(self.body("").to_string())
    }
}

/// The problem code of a refused check (contract sections 4 and 13).
pub fn auth_code(e: &crate::auth::AuthError) -> Code {
    use crate::auth::AuthError as E;
    match e {
        E::CertificateNotActive(_) => Code::CertificateNotActive,
        E::PartnerSuspended => Code::PartnerSuspended,
        E::MissingSignature(_) => Code::MissingSignature,
        E::InvalidSignature(_) => Code::InvalidSignature,
        E::InvalidContentDigest(_) => Code::InvalidContentDigest,
        E::UnknownKey => Code::UnknownKey,
        E::KeyIdentityMismatch => Code::KeyIdentityMismatch,
        E::ClockSkew => Code::ClockSkew,
        E::SignatureExpired => Code::SignatureExpired,
        E::ReplayedRequest { .. } => Code::ReplayedRequest,
        E::Db(_) => Code::Internal,
    }
}

impl From<crate::auth::AuthError> for Problem {
    fn from(e: crate::auth::AuthError) -> Self {
        match e {
            crate::auth::AuthError::Db(cause) => Problem::from(cause),
            other => Problem::new(auth_code(&other), other.to_string()),
        }
    }
}

/// Errors of actix's own JSON extractor, as problems.
pub fn json_error(err: actix_web::error::JsonPayloadError) -> Problem {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::ContentType => Problem::new(
            Code::UnsupportedMediaType,
            "Content-Type must be application/json",
        ),
        E::Overflow { .. } | E::OverflowKnownLength { .. } => {
            Problem::new(Code::PayloadTooLarge, "the body is too large")
        }
        // The extractor does not know the field's path: only a missing or unknown field's name.
        E::Deserialize(e) if e.is_data() => data_error("", &e),
        E::Deserialize(e) => malformed(&e),
        other => Problem::new(Code::MalformedRequest, other.to_string()),
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
        Code::MalformedRequest,
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
    fn every_code_has_one_name_an_error_status_and_a_title() {
        let mut names = std::collections::HashSet::new();
        for code in Code::ALL {
            let name = code.as_str();
            assert!(names.insert(name), "{name} twice");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{name}"
            );
            assert!(code.status().is_client_error() || code.status().is_server_error());
            assert!(!code.title().is_empty());
        }
        // The contract's own (section 4), with their statuses.
        for (name, status) in [
            ("malformed-request", 400),
            ("replayed-request", 401),
            ("partner-suspended", 403),
            ("statement-not-found", 404),
            ("idempotency-key-in-flight", 409),
            ("payload-too-large", 413),
            ("day-not-closed", 422),
            ("rate-limited", 429),
            ("internal", 500),
        ] {
            let code = Code::ALL.iter().find(|c| c.as_str() == name).unwrap();
            assert_eq!(code.status().as_u16(), status, "{name}");
        }
    }

    #[test]
    fn not_json_is_malformed() {
        let p = problem_of::<Item>(r#"{"card_no":"#);
        assert_eq!(p["code"], "malformed-request");
        let p = problem_of::<Item>(r#"{"card_no":"1","gross_fen":1} trailing"#);
        assert_eq!(p["code"], "malformed-request");
    }
}
