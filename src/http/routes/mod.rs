pub mod finance;
pub mod keys;
pub mod members;
pub mod ops;
pub mod reconciliation;
pub mod statements;
pub mod transactions;

use super::problem::Problem;
use super::AppState;
use crate::db::executor::ExecutorError;

impl From<ExecutorError> for Problem {
    fn from(e: ExecutorError) -> Self {
        match e {
            ExecutorError::Overloaded => Problem::new(
                503,
                "service-unavailable",
                "the gateway is overloaded; retry shortly",
            ),
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

pub async fn not_found() -> Result<actix_web::HttpResponse, Problem> {
    Err(Problem::new(404, "not-found", "no such resource"))
}
