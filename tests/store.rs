//! The storage engine's supervision, on a real database (SQLite here, PostgreSQL when
//! `ALLIANCE_TEST_DATABASE_URL` names one): a job that panics on a database thread or in the
//! writer is answered with an error (the request's 500), nothing it wrote is committed, the
//! thread serves on, and the panic is counted.
use alliance_gateway::config::DatabaseUrl;
use alliance_gateway::db::{DbConn, DbError};
use alliance_gateway::store::{DbFailure, Store};
use diesel::connection::SimpleConnection;
use diesel::RunQueryDsl;

#[derive(Debug)]
#[allow(dead_code)] // read through Debug in failure messages
struct Failed(DbError);

impl From<DbError> for Failed {
    fn from(e: DbError) -> Self {
        Failed(e)
    }
}

impl From<diesel::result::Error> for Failed {
    fn from(e: diesel::result::Error) -> Self {
        Failed(DbError::Query(e))
    }
}

impl DbFailure for Failed {
    fn is_db_failure(&self) -> bool {
        true
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// A fresh database: a SQLite file, or a new PostgreSQL database.
fn database(dir: &std::path::Path) -> DatabaseUrl {
    match std::env::var("ALLIANCE_TEST_DATABASE_URL") {
        Ok(admin) if admin.starts_with("postgres") => {
            use diesel::Connection;
            let mut url = url::Url::parse(&admin).unwrap();
            if !url.query_pairs().any(|(k, _)| k == "sslmode") {
                url.query_pairs_mut().append_pair("sslmode", "disable");
            }
            let name = format!("alliance_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = diesel::PgConnection::establish(url.as_str()).unwrap();
            diesel::sql_query(format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .unwrap();
            url.set_path(&name);
            DatabaseUrl::Postgres(url.to_string())
        }
        _ => DatabaseUrl::Sqlite(dir.join("store.db")),
    }
}

fn scratch_rows(conn: &mut DbConn) -> i64 {
    diesel::sql_query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM scratch")
        .get_result::<Count>(conn)
        .unwrap()
        .n
}

#[tokio::test]
async fn a_panicking_job_is_answered_with_an_error_rolled_back_and_its_thread_serves_on() {
    let metrics = alliance_gateway::monitoring::handle();
    let dir = tempfile::tempdir().unwrap();
    // One database thread: if a panic killed it, nothing after would run.
    let store = tokio::task::spawn_blocking({
        let url = database(dir.path());
        move || Store::open(&url, 1)
    })
    .await
    .unwrap()
    .unwrap();
    store
        .read(|conn| {
            conn.batch_execute("CREATE TABLE scratch (x BIGINT NOT NULL)")
                .map_err(DbError::from)
        })
        .await
        .unwrap();

    for round in 0..3 {
        // A read job that panics.
        let read: Result<(), DbError> = store.read(|_| panic!("a bug in a read")).await;
        assert!(
            matches!(read, Err(DbError::Unavailable(_))),
            "round {round}: {read:?}"
        );
        // A request's write that panics after writing: nothing of it is committed.
        let write: Result<(), Failed> = store
            .write(|conn| {
                diesel::sql_query("INSERT INTO scratch (x) VALUES (1)").execute(conn)?;
                panic!("a bug after a write")
            })
            .await;
        assert!(write.is_err(), "round {round}");
        // The same thread and writer serve on, and commit what does not panic.
        let fine: Result<(), Failed> = store
            .write(|conn| {
                diesel::sql_query("INSERT INTO scratch (x) VALUES (2)").execute(conn)?;
                Ok(())
            })
            .await;
        assert!(fine.is_ok(), "round {round}: {fine:?}");
        let rows = store
            .read(|conn| Ok::<_, DbError>(scratch_rows(conn)))
            .await
            .unwrap();
        assert_eq!(rows, round + 1, "only the writes that did not panic");
    }
    let rendered = metrics.render();
    assert!(
        rendered.contains("alliance_worker_panics_total"),
        "{rendered}"
    );
}
