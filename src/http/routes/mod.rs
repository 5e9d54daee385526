pub mod finance;
pub mod keys;
pub mod members;
pub mod ops;
pub mod reconciliation;
pub mod statements;
pub mod transactions;

use super::problem::Code;
use super::problem::Problem;
use super::AppState;
use crate::db::executor::ExecutorError;

impl From<ExecutorError> for Problem {
    fn from(e: ExecutorError) -> Self {
        match e {
            ExecutorError::Overloaded => Problem::overloaded(),
            ExecutorError::Lost => Problem::internal(&e),
        }
    }
}

/// Runs blocking database work on the database threads, off the async workers.
pub async fn blocking<T, F>(state: &AppState, f: F) -> Result<T, Problem>
where
    F: FnOnce() -> Result<T, Problem> + Send + 'static,
    T: Send + 'static,
{
    state.db.run(f).await?
}

/// Runs a request's write (a sale, a reversal, a member token). On SQLite it joins a
/// group-commit batch ([`crate::db::group_commit`]). On PostgreSQL it runs in a transaction of
/// its own on a database thread, so that everything before a partner's chain lock runs side by
/// side, and the server shares WAL flushes between concurrent commits itself.
pub async fn write<T, E, F>(state: &AppState, mut work: F) -> Result<Result<T, E>, ExecutorError>
where
    T: Send + 'static,
    E: From<crate::db::DbError>
        + From<diesel::result::Error>
        + crate::db::group_commit::DbFailure
        + Send
        + 'static,
    F: FnMut(&mut crate::db::DbConn) -> Result<T, E> + Send + 'static,
{
    if let Some(writes) = &state.writes {
        return writes.run(work).await;
    }
    let pool = state.pool.clone();
    state
        .db
        .run(move || {
            let mut conn = pool.get().map_err(crate::db::DbError::from)?;
            crate::db::write_tx(&mut conn, |c| work(c))
        })
        .await
}

/// `method-not-allowed` (405), with the resource's methods in `Allow` (RFC 9110, 15.5.6).
pub fn method_not_allowed(allow: &'static str) -> actix_web::HttpResponse {
    let p = Problem::for_status(actix_web::http::StatusCode::METHOD_NOT_ALLOWED);
    actix_web::HttpResponse::MethodNotAllowed()
        .insert_header(("allow", allow))
        .content_type(crate::http::problem::PROBLEM_JSON)
        .body(p.body("").to_string())
}

pub async fn not_found() -> Result<actix_web::HttpResponse, Problem> {
    Err(Problem::new(Code::NotFound, "no such resource"))
}
