use crate::http::extract::FinanceCaller;
use crate::http::problem::Problem;
use actix_web::{HttpRequest, HttpResponse};
use chrono::NaiveDate;

/// The widest `from`..`to` range a list accepts (contract section 13).
const MAX_RANGE_DAYS: i64 = 92;

/// `GET /v1/finance/settlements?from=&to=` — settlement runs in a date range (inclusive).
///
/// Settlement runs are produced by the nightly settlement, which is not built yet: until it
/// is, no run exists and the list is empty. The route exists now so that finance identities
/// and role separation can be used and tested end to end.
pub async fn settlements(
    _finance: FinanceCaller,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let mut errors = Vec::new();
    let mut date = |name: &str| -> Option<NaiveDate> {
        let value = url::form_urlencoded::parse(req.query_string().as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())?;
        match NaiveDate::parse_from_str(&value, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                errors.push(
                    serde_json::json!({ "field": name, "message": "must be a date YYYY-MM-DD" }),
                );
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
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": [], "next_cursor": null })))
}
