use crate::http::extract::PartnerCaller;
use crate::http::problem::Code;
use crate::http::problem::Problem;
use crate::http::AppState;
use crate::reconciliation::{self, UploadError};
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::SecondsFormat;

impl From<UploadError> for Problem {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::Invalid(errors) => {
                Problem::validation(serde_json::to_value(errors).unwrap_or_default())
            }
            e @ UploadError::QuotaExceeded { .. } => {
                Problem::new(Code::UploadQuotaExceeded, e.to_string())
            }
            UploadError::Db(cause) => Problem::from(cause),
        }
    }
}

/// `PUT /v1/reconciliation/{business_date}` — the partner's own records of a day, as CSV.
pub async fn upload(
    state: web::Data<AppState>,
    partner: PartnerCaller,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let csv = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/csv"));
    if !csv {
        return Err(Problem::new(
            Code::UnsupportedMediaType,
            "Content-Type must be text/csv",
        ));
    }
    let day = crate::domain::day::parse_day(&path).map_err(|e| {
        Problem::validation(
            serde_json::json!([{ "field": "business_date", "message": e.to_string() }]),
        )
    })?;
    let st = state.clone();
    let (rows, accepted_at) = state
        .store
        .read(move |conn| {
            let now = st.clock.now();
            let today = crate::alliance::business_day(now, st.settings.timezone);
            let today_from =
                crate::alliance::day_start_utc(today, st.settings.timezone).unwrap_or(now);
            let quota = reconciliation::Quota {
                uploads_per_day: st.settings.uploads_per_partner_per_day,
                bytes_per_day: st.settings.upload_bytes_per_partner_per_day,
            };
            let received = reconciliation::Received {
                at: crate::db::micros(now),
                today,
                today_from: today_from.naive_utc(),
            };
            reconciliation::upload(conn, partner.code.as_str(), day, received, quota, &body)
                .map_err(Problem::from)
        })
        .await?;
    let accepted_at = accepted_at
        .and_utc()
        .with_timezone(&state.settings.timezone)
        .to_rfc3339_opts(SecondsFormat::Secs, false);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "rows": rows, "accepted_at": accepted_at })))
}
