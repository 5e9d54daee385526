//! Statement downloads: a partner's own (`/v1/statements…`) and finance's
//! (`/v1/finance/settlements/{date}/…`), and finance's rerun of a closed day. The files are
//! read from the statements directory, never re-computed on a read.
use crate::domain::PartnerCode;
use crate::http::extract::{FinanceCaller, PartnerCaller};
use crate::http::problem::Code;
use crate::http::problem::Problem;
use crate::http::AppState;
use crate::settlement::{self, SettleError, Signer};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDate;

impl From<SettleError> for Problem {
    fn from(e: SettleError) -> Self {
        match e {
            SettleError::NotFound => Problem::new(Code::StatementNotFound, e.to_string()),
            SettleError::DayNotClosed(_) => Problem::new(Code::DayNotClosed, e.to_string()),
            SettleError::DayNotEnded(_) => Problem::new(Code::DayNotClosed, e.to_string()),
            SettleError::Db(cause) => Problem::from(cause),
            other => Problem::internal(&other),
        }
    }
}

fn bad(field: &str, message: &str) -> Problem {
    Problem::validation(serde_json::json!([{ "field": field, "message": message }]))
}

fn date(value: &str, field: &str) -> Result<NaiveDate, Problem> {
    crate::domain::day::parse_day(value).map_err(|e| bad(field, &e.to_string()))
}

fn query(req: &HttpRequest, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `?version=N` (N ≥ 1), or the latest.
fn version(req: &HttpRequest) -> Result<Option<i64>, Problem> {
    match query(req, "version") {
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(bad("version", "must be a version number from 1")),
        },
    }
}

fn file_response(version: i64, name: &str, bytes: Vec<u8>) -> HttpResponse {
    let content_type = if name.ends_with(".json") {
        "application/json"
    } else {
        "text/csv; charset=utf-8"
    };
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("statement-version", version.to_string()))
        .body(bytes)
}

async fn serve_file(
    state: web::Data<AppState>,
    day: NaiveDate,
    version: Option<i64>,
    name: String,
    only_partner: Option<String>,
) -> Result<HttpResponse, Problem> {
    serve_file_as(state, day, version, name, only_partner, None).await
}

/// Like `serve_file`; a finance `actor`'s download is recorded in the audit log.
async fn serve_file_as(
    state: web::Data<AppState>,
    day: NaiveDate,
    version: Option<i64>,
    name: String,
    only_partner: Option<String>,
    actor: Option<String>,
) -> Result<HttpResponse, Problem> {
    let st = state.clone();
    let shown = name.clone();
    let (v, bytes) = state
        .store
        .read(move |conn| {
            let (v, bytes) = match only_partner {
                Some(p) => settlement::partner_discrepancies(conn, &st.settings, day, version, &p),
                None => settlement::read_file(conn, &st.settings, day, version, &name),
            }
            .map_err(Problem::from)?;
            if let Some(actor) = actor {
                crate::db::write_tx(conn, |conn| {
                    crate::audit::record(
                        conn,
                        &actor,
                        "finance.download",
                        &day.to_string(),
                        &serde_json::json!({ "file": name, "version": v, "result": "ok" }),
                    )
                })
                .map_err(|e| Problem::internal(&e))?;
            }
            Ok::<_, Problem>((v, bytes))
        })
        .await?;
    Ok(file_response(v, &shown, bytes))
}

/// `GET /v1/statements?from=&to=` (at most 92 days)
pub async fn list(
    state: web::Data<AppState>,
    partner: PartnerCaller,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let (Some(from), Some(to)) = (query(&req, "from"), query(&req, "to")) else {
        return Err(bad("from", "from and to are required"));
    };
    let (from, to) = (date(&from, "from")?, date(&to, "to")?);
    if to < from || (to - from).num_days() >= 92 {
        return Err(bad(
            "to",
            "the range must run forward and span at most 92 days",
        ));
    }
    let st = state.clone();
    let items = state
        .store
        .read(move |conn| {
            settlement::partner_statements(conn, &st.settings, partner.code.as_str(), from, to)
                .map_err(Problem::from)
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items, "next_cursor": null })))
}

/// `GET /v1/statements/{business_date}[?version=N]`
pub async fn statement(
    state: web::Data<AppState>,
    partner: PartnerCaller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let day = date(&path, "business_date")?;
    let name = format!("partners/{}.csv", partner.code);
    serve_file(state, day, version(&req)?, name, None).await
}

/// `GET /v1/statements/{business_date}/manifest[?version=N]`
pub async fn manifest(
    state: web::Data<AppState>,
    partner: PartnerCaller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let day = date(&path, "business_date")?;
    let name = format!("partners/{}.manifest.json", partner.code);
    serve_file(state, day, version(&req)?, name, None).await
}

/// `GET /v1/statements/{business_date}/discrepancies[?version=N]`: the partner's rows only.
pub async fn discrepancies(
    state: web::Data<AppState>,
    partner: PartnerCaller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let day = date(&path, "business_date")?;
    let only = Some(partner.code.to_string());
    serve_file(state, day, version(&req)?, "discrepancies.csv".into(), only).await
}

/// `GET /v1/finance/settlements/{date}/{file}` for `summary.csv`, `discrepancies.csv`,
/// `manifest`.
pub async fn finance_file(
    state: web::Data<AppState>,
    finance: FinanceCaller,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let (day, file) = path.into_inner();
    let day = date(&day, "date")?;
    let name = match file.as_str() {
        "summary.csv" | "discrepancies.csv" => file,
        "manifest" => "manifest.json".to_owned(),
        _ => return Err(Problem::new(Code::NotFound, "no such resource")),
    };
    let actor = Some(format!("finance:{}", finance.name.as_str()));
    serve_file_as(state, day, version(&req)?, name, None, actor).await
}

/// `GET /v1/finance/settlements/{date}/partners/{code}.csv`
pub async fn finance_partner_file(
    state: web::Data<AppState>,
    finance: FinanceCaller,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let (day, file) = path.into_inner();
    let day = date(&day, "date")?;
    let code = file
        .strip_suffix(".csv")
        .and_then(|c| PartnerCode::parse(c).ok())
        .ok_or_else(|| Problem::new(Code::StatementNotFound, "no such statement"))?;
    let actor = Some(format!("finance:{}", finance.name.as_str()));
    serve_file_as(
        state,
        day,
        version(&req)?,
        format!("partners/{code}.csv"),
        None,
        actor,
    )
    .await
}

/// `POST /v1/finance/settlements/{date}/rerun` (signed)
pub async fn rerun(
    state: web::Data<AppState>,
    finance: FinanceCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let day = date(&path, "date")?;
    let actor = format!("finance:{}", finance.name.as_str());
    let now = state.clock.now();
    let st = state.clone();
    let (version, files) = state
        .store
        .read(move |conn| {
            let signer = Signer {
                key: &st.gateway_key,
                key_id: &st.gateway_key_id,
            };
            settlement::rerun(conn, &st.settings, &signer, day, (&actor, now))
                .map_err(Problem::from)
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "business_date": day.to_string(),
        "version": version,
        "files": files,
    })))
}
