use crate::http::extract::AnyCaller;
use crate::http::problem::Problem;
use crate::http::AppState;
use actix_web::{web, HttpResponse};

/// `GET /v1/keys`: the gateway's public keys as a JWKS, retired ones included.
pub async fn jwks(state: web::Data<AppState>, _caller: AnyCaller) -> Result<HttpResponse, Problem> {
    let jwks = state
        .store
        .read(move |conn| crate::alliance::gateway_jwks(conn).map_err(|e| Problem::internal(&e)))
        .await?;
    Ok(HttpResponse::Ok().json(jwks))
}
