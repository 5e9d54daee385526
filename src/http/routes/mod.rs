pub mod keys;
pub mod members;
pub mod ops;

use super::problem::Problem;
use actix_web::web;

/// Runs blocking database work off the async workers.
pub async fn blocking<T, F>(f: F) -> Result<T, Problem>
where
    F: FnOnce() -> Result<T, Problem> + Send + 'static,
    T: Send + 'static,
{
    web::block(f).await.map_err(|e| Problem::internal(&e))?
}

pub async fn not_found() -> Result<actix_web::HttpResponse, Problem> {
    Err(Problem::new(404, "not-found", "no such resource"))
}
