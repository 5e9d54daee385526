use crate::domain::day::{parse_day, FIRST_DAY};
use crate::http::extract::FinanceCaller;
use crate::http::problem::Problem;
use crate::http::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{NaiveDate, TimeDelta};

/// The widest `from`..`to` range a list accepts (contract section 13).
const MAX_RANGE_DAYS: i64 = 92;
/// The range listed when `from` is left out: the last month.
const DEFAULT_RANGE_DAYS: i64 = 31;

/// `GET /v1/finance/settlements?from=&to=` — settlement runs in a date range (inclusive;
/// default: the last 31 days).
pub async fn settlements(
    state: web::Data<AppState>,
    _finance: FinanceCaller,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let mut errors = Vec::new();
    let mut date = |name: &str| -> Option<NaiveDate> {
        let value = url::form_urlencoded::parse(req.query_string().as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())?;
        match parse_day(&value) {
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(serde_json::json!({ "field": name, "message": e.to_string() }));
                None
            }
        }
    };
    let (from, to) = (date("from"), date("to"));
    if let (Some(from), Some(to)) = (from, to) {
        if to < from {
            errors.push(serde_json::json!({ "field": "to", "message": "must not be before from" }));
        } else if (to - from).num_days() >= MAX_RANGE_DAYS {
            errors.push(serde_json::json!({ "field": "to", "message": format!("the range may span at most {MAX_RANGE_DAYS} days") }));
        }
    }
    if !errors.is_empty() {
        return Err(Problem::validation(serde_json::Value::Array(errors)));
    }
    let today = crate::alliance::business_day(state.clock.now(), state.settings.timezone);
    let to = to.unwrap_or(today);
    // `to` is a parsed day (from 2000-01-01) or today, so the subtraction cannot leave chrono's
    // range; it is checked all the same, and the default range starts no earlier than that day.
    let from = match from {
        Some(from) => from,
        None => to
            .checked_sub_signed(TimeDelta::days(DEFAULT_RANGE_DAYS))
            .map_or(FIRST_DAY, |d| d.max(FIRST_DAY)),
    };
    let st = state.clone();
    let items = state
        .store
        .read(move |conn| {
            crate::settlement::list_runs(conn, &st.settings, from, to)
                .map_err(|e| Problem::internal(&e))
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items, "next_cursor": null })))
}
