use super::blocking;
use crate::http::extract::PartnerCaller;
use crate::http::metrics;
use crate::http::problem::Problem;
use crate::http::AppState;
use crate::members::verify::{self, VerifyError, VerifyRequest};
use actix_web::{web, HttpResponse};

impl From<VerifyError> for Problem {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::Validation(errors) => {
                Problem::validation(serde_json::to_value(errors).unwrap_or_default())
            }
            VerifyError::MemberNotFound => {
                Problem::new(404, "member-not-found", "no member matches")
            }
            VerifyError::Db(cause) => Problem::internal(&cause),
        }
    }
}

/// `POST /v1/members/verify`
pub async fn verify(
    state: web::Data<AppState>,
    partner: PartnerCaller,
    body: web::Json<VerifyRequest>,
) -> Result<HttpResponse, Problem> {
    let lookup = body.into_inner().parse()?;
    let code = partner.code.clone();
    let st = state.clone();
    let result = blocking(&state, move || {
        let mut conn = st.pool.get().map_err(|e| Problem::internal(&e))?;
        verify::verify(
            &mut conn,
            &st.member_keys,
            &code,
            &lookup,
            chrono::Utc::now(),
            st.settings.timezone,
        )
        .map_err(|e| {
            if matches!(e, VerifyError::MemberNotFound) {
                metrics::record_member_not_found(code.as_str());
            }
            Problem::from(e)
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(result))
}
