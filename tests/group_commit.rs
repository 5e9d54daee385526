//! The SQLite group-commit writer on a real database file: jobs that share a batch stand or
//! fall alone, a panicking job leaves the batch's transaction sound, and every answer comes
//! after the commit that made it true.
use alliance_gateway::config::DatabaseUrl;
use alliance_gateway::db::{self, DbConn, DbError};
use alliance_gateway::store::sqlite::group_commit::{DbFailure, GroupCommit, Guard};
use alliance_gateway::store::sqlite::wal::WalState;
use alliance_gateway::store::StoreError;
use diesel::connection::SimpleConnection;
use diesel::RunQueryDsl;
use std::time::Duration;

/// A job's error: a refusal (the request's fault) or a database failure.
#[derive(Debug)]
enum JobError {
    Refused,
    Db(DbError),
}

impl From<DbError> for JobError {
    fn from(e: DbError) -> Self {
        JobError::Db(e)
    }
}

impl From<diesel::result::Error> for JobError {
    fn from(e: diesel::result::Error) -> Self {
        JobError::Db(DbError::Query(e))
    }
}

impl DbFailure for JobError {
    fn is_db_failure(&self) -> bool {
        matches!(self, JobError::Db(_))
    }
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    x: i64,
}

fn insert(conn: &mut DbConn, x: i64) -> Result<(), JobError> {
    diesel::sql_query(format!("INSERT INTO scratch (x) VALUES ({x})")).execute(conn)?;
    Ok(())
}

fn stored(pool: &db::Pool) -> Vec<i64> {
    let mut conn = pool.get().expect("connection");
    let mut rows: Vec<i64> = diesel::sql_query("SELECT x FROM scratch")
        .load::<Row>(&mut conn)
        .expect("select")
        .into_iter()
        .map(|r| r.x)
        .collect();
    rows.sort_unstable();
    rows
}

/// A fresh database file with a scratch table, and a writer over it.
fn setup() -> (tempfile::TempDir, db::Pool, GroupCommit) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = DatabaseUrl::Sqlite(dir.path().join("gc.db"));
    let pool = db::pool(&url, 3).expect("pool");
    pool.get()
        .expect("connection")
        .batch_execute("CREATE TABLE scratch (x INTEGER NOT NULL)")
        .expect("create");
    let writes = GroupCommit::start(pool.clone()).expect("writer");
    (dir, pool, writes)
}

/// A first job that holds the writer for a moment (and inserts 1), so that the jobs sent
/// next queue up behind it and are taken together as one batch.
async fn hold_the_writer(
    writes: &GroupCommit,
) -> tokio::task::JoinHandle<Result<Result<(), JobError>, StoreError>> {
    let writes = writes.clone();
    let first = tokio::spawn(async move {
        writes
            .run(Guard::Savepoint, |conn| {
                std::thread::sleep(Duration::from_millis(300));
                insert(conn, 1)
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_in_one_batch_stand_or_fall_alone_and_a_panic_leaves_the_batch_sound() {
    let (_dir, pool, writes) = setup();
    let first = hold_the_writer(&writes).await;
    let ok = writes.run(Guard::Savepoint, |conn| insert(conn, 2));
    let refused = writes.run(Guard::Savepoint, |conn| -> Result<(), JobError> {
        insert(conn, 3)?;
        Err(JobError::Refused)
    });
    let panicked = writes.run(Guard::Savepoint, |conn| -> Result<(), JobError> {
        insert(conn, 4)?;
        panic!("a job that panics half way");
    });
    let after = writes.run(Guard::Savepoint, |conn| insert(conn, 5));
    let (ok, refused, panicked, after) = tokio::join!(ok, refused, panicked, after);

    assert!(matches!(first.await.expect("join"), Ok(Ok(()))));
    assert!(matches!(ok, Ok(Ok(()))), "{ok:?}");
    assert!(matches!(refused, Ok(Err(JobError::Refused))), "{refused:?}");
    assert!(
        matches!(&panicked, Ok(Err(JobError::Db(e))) if e.to_string().contains("panicked")),
        "{panicked:?}"
    );
    assert!(matches!(after, Ok(Ok(()))), "{after:?}");

    // What was answered as done is committed (read on another connection); what failed left
    // nothing behind.
    assert_eq!(stored(&pool), vec![1, 2, 5]);

    // The writer's connection is not left inside a transaction: a later job commits too.
    assert!(matches!(
        writes.run(Guard::Savepoint, |conn| insert(conn, 6)).await,
        Ok(Ok(()))
    ));
    assert_eq!(stored(&pool), vec![1, 2, 5, 6]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_single_statement_job_rolls_its_batch_back_and_the_others_run_again_alone() {
    let (_dir, pool, writes) = setup();
    let first = hold_the_writer(&writes).await;
    let before = writes.run(Guard::SingleStatement, |conn| insert(conn, 2));
    // Fails in the database (no such table) without a savepoint of its own.
    let broken = writes.run(Guard::SingleStatement, |conn| -> Result<(), JobError> {
        diesel::sql_query("INSERT INTO no_such_table (x) VALUES (1)").execute(conn)?;
        Ok(())
    });
    let behind = writes.run(Guard::SingleStatement, |conn| insert(conn, 3));
    let (before, broken, behind) = tokio::join!(before, broken, behind);

    assert!(matches!(first.await.expect("join"), Ok(Ok(()))));
    assert!(matches!(before, Ok(Ok(()))), "{before:?}");
    assert!(
        matches!(&broken, Ok(Err(JobError::Db(e))) if e.to_string().contains("no such table")),
        "{broken:?}"
    );
    assert!(matches!(behind, Ok(Ok(()))), "{behind:?}");
    assert_eq!(stored(&pool), vec![1, 2, 3]);
}

fn wal_state(result: Result<Result<Option<WalState>, DbError>, StoreError>) -> WalState {
    match result {
        Ok(Ok(Some(state))) => state,
        other => panic!("no WAL state: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_rewinds_the_wal_on_request_once_no_reader_is_left_in_it() {
    let (_dir, pool, writes) = setup();
    for x in 0..50 {
        assert!(matches!(
            writes
                .run(Guard::Savepoint, move |conn| insert(conn, x))
                .await,
            Ok(Ok(()))
        ));
    }
    // A reader that started while the WAL held frames the database file did not: it reads
    // from the WAL until it ends.
    let mut reader = pool.get().expect("connection");
    reader.batch_execute("BEGIN").expect("begin");
    let seen: Vec<Row> = diesel::sql_query("SELECT count(*) AS x FROM scratch")
        .load(&mut reader)
        .expect("count");
    assert_eq!(seen[0].x, 50);

    // The restart copies every frame but does not wait for the reader: it says it is busy.
    let blocked = wal_state(writes.restart_wal().await);
    assert_eq!(blocked.busy, 1, "{blocked:?}");
    assert!(blocked.log_frames >= 50, "{blocked:?}");

    reader.batch_execute("COMMIT").expect("commit");
    drop(reader);
    let done = wal_state(writes.restart_wal().await);
    assert_eq!(done.busy, 0, "{done:?}");
    assert_eq!(done.log_frames, done.checkpointed_frames, "{done:?}");

    // The next write starts at the beginning of the WAL: it holds that write's frames only.
    assert!(matches!(
        writes.run(Guard::Savepoint, |conn| insert(conn, 50)).await,
        Ok(Ok(()))
    ));
    let mut conn = pool.get().expect("connection");
    let after = alliance_gateway::store::sqlite::wal::checkpoint_passive(&mut conn)
        .expect("checkpoint")
        .expect("SQLite");
    assert!(after.log_frames < 10, "the WAL was not rewound: {after:?}");
    assert_eq!(stored(&pool), (0..=50).collect::<Vec<i64>>());
}
