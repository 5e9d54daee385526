use super::blocking;
use crate::http::extract::AnyCaller;
use crate::http::problem::Problem;
use crate::http::AppState;
use actix_web::{web, HttpResponse};

/// `GET /v1/keys`: the gateway's public keys as a JWKS, retired ones included.
pub async fn jwks(state: web::Data<AppState>, _caller: AnyCaller) -> Result<HttpResponse, Problem> {
    let st = state.clone();
    let jwks = blocking(&state, move || {
        let mut conn = st.pool.get().map_err(|e| Problem::internal(&e))?;
        crate::alliance::gateway_jwks(&mut conn).map_err(|e| Problem::internal(&e))
    })
    .await?;
    Ok(HttpResponse::Ok().json(jwks))
}
