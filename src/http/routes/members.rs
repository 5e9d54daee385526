use crate::http::extract::PartnerCaller;
use crate::http::problem::Code;
use crate::http::problem::Problem;
use crate::http::AppState;
use crate::members::verify::{self, VerifyError, VerifyRequest};
use crate::monitoring as metrics;
use actix_web::{web, HttpResponse};

impl From<VerifyError> for Problem {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::Validation(errors) => {
                Problem::validation(serde_json::to_value(errors).unwrap_or_default())
            }
            VerifyError::MemberNotFound => Problem::new(Code::MemberNotFound, "no member matches"),
            VerifyError::RateLimited(limited) => rate_limited(limited),
            VerifyError::Db(cause) => Problem::from(cause),
        }
    }
}

fn rate_limited(limited: crate::members::limits::RateLimited) -> Problem {
    use crate::members::limits::Limit;
    let detail = match limited.what {
        Limit::RequestsPerMinute => "too many verify requests this minute",
        Limit::MembersPerDay => "too many distinct members verified today",
    };
    let mut p = Problem::new(Code::RateLimited, detail);
    p.retry_after_s = Some(limited.retry_after_s);
    p
}

/// `POST /v1/members/verify`
pub async fn verify(
    state: web::Data<AppState>,
    partner: PartnerCaller,
    req: actix_web::HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let request: VerifyRequest = crate::http::problem::json_request(&req, &body)?;
    let lookup = request.parse()?;
    state
        .verify_limits
        .request(partner.code.as_str(), state.clock.now().timestamp())
        .map_err(|limited| {
            metrics::record_rate_limited(partner.code.as_str(), "verify_per_minute");
            rate_limited(limited)
        })?;
    let code = partner.code.clone();
    let st = state.clone();
    let result = state.store.read(move |conn| {
        verify::verify(
            conn,
            &partner.caller.registry,
            &st.member_keys,
            &st.verify_limits,
            &code,
            &lookup,
            st.clock.now().with_timezone(&st.settings.timezone),
        )
        .map_err(|e| {
            match &e {
                VerifyError::MemberNotFound => {
                    metrics::record_member_not_found(code.as_str());
                    let now = st.clock.now().timestamp();
                    if st.verify_limits.not_found(code.as_str(), now) {
                        metrics::record_member_not_found_burst(code.as_str());
                        tracing::warn!(partner.code = %code, "burst of verify 404s (card-number guessing?)");
                    }
                }
                VerifyError::RateLimited(_) => {
                    metrics::record_rate_limited(code.as_str(), "verify_members_per_day");
                }
                _ => {}
            }
            Problem::from(e)
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(result))
}
