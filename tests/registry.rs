//! The registry cache on a real SQLite file: a change made through another connection (as the
//! CLI makes it, from another process) moves the generation on, and no request that reads the
//! newer generation is answered from what was cached before it.
use alliance_gateway::config::DatabaseUrl;
use alliance_gateway::db::partners::{NewPartner, Partner};
use alliance_gateway::db::registry_generation::RegistryGeneration;
use alliance_gateway::db::{self, now_utc};
use alliance_gateway::registry::Registry;
use diesel::RunQueryDsl;

fn setup() -> (tempfile::TempDir, db::Pool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = DatabaseUrl::Sqlite(dir.path().join("registry.db"));
    let pool = db::pool(&url, 2).expect("pool");
    let mut conn = pool.get().expect("connection");
    db::migrate(&mut conn).expect("migrate");
    let now = now_utc();
    Partner::insert(
        &mut conn,
        &NewPartner {
            code: "P-RST-001",
            name: "Noodle House",
            category: "restaurant",
            capabilities: "",
            contact_email: "ops@example.com",
            status: Partner::ACTIVE,
            created_at: now,
            updated_at: now,
        },
    )
    .expect("partner");
    (dir, pool)
}

/// Suspends the sample partner through `conn`, as the CLI would.
fn suspend(conn: &mut db::PooledConn) {
    Partner::set_status(
        conn,
        "P-RST-001",
        Partner::SUSPENDED,
        Some("unpaid fees"),
        now_utc(),
    )
    .expect("suspend");
}

#[test]
fn a_change_through_another_connection_is_seen_by_the_next_view_never_the_cached_row() {
    let (_dir, pool) = setup();
    let mut gateway = pool.get().expect("gateway connection");
    let mut admin = pool.get().expect("admin connection");
    let registry = Registry::new();

    let before = registry.current(&mut gateway).expect("view");
    let cached = before.partner(&mut gateway, "P-RST-001").expect("read");
    assert_eq!(cached.expect("partner").status, Partner::ACTIVE);
    assert!(before
        .partner(&mut gateway, "P-NONE-01")
        .expect("read")
        .is_none());

    // Writes outside the registry leave the generation (and so the cache) alone.
    let generation = RegistryGeneration::current(&mut admin).expect("generation");
    diesel::sql_query(
        "INSERT INTO members (card_no, tier, status, created_at, updated_at) \
         VALUES ('6200000000000001', 'gold', 'active', '2026-11-24 00:00:00', '2026-11-24 00:00:00')",
    )
    .execute(&mut admin)
    .expect("member");
    assert_eq!(
        RegistryGeneration::current(&mut admin).expect("generation"),
        generation
    );

    suspend(&mut admin);
    let after = registry.current(&mut gateway).expect("view");
    assert!(after.generation() > before.generation());
    let seen = after.partner(&mut gateway, "P-RST-001").expect("read");
    assert_eq!(seen.expect("partner").status, Partner::SUSPENDED);

    // A request that read the older generation no longer gets the cached row either: the
    // cache moved on, so it reads the database.
    let late = before.partner(&mut gateway, "P-RST-001").expect("read");
    assert_eq!(late.expect("partner").status, Partner::SUSPENDED);
    // ...and what it read did not go into the cache under the newer generation.
    diesel::sql_query("UPDATE partners SET status = 'active' WHERE code = 'P-RST-001'")
        .execute(&mut admin)
        .expect("reactivate");
    let again = registry.current(&mut gateway).expect("view");
    assert!(again.generation() > after.generation());
    let seen = again.partner(&mut gateway, "P-RST-001").expect("read");
    assert_eq!(seen.expect("partner").status, Partner::ACTIVE);

    // A row created after a miss was cached is found once the generation moves on.
    assert!(again
        .partner(&mut gateway, "P-NEW-001")
        .expect("read")
        .is_none());
    let now = now_utc();
    Partner::insert(
        &mut admin,
        &NewPartner {
            code: "P-NEW-001",
            name: "New",
            category: "gym",
            capabilities: "",
            contact_email: "ops@example.com",
            status: Partner::ACTIVE,
            created_at: now,
            updated_at: now,
        },
    )
    .expect("new partner");
    let latest = registry.current(&mut gateway).expect("view");
    assert!(latest
        .partner(&mut gateway, "P-NEW-001")
        .expect("read")
        .is_some());
}

/// The checks that run off the database threads (`auth::check_cache_only`) read the registry
/// through `CacheOnly`: they get only what the cache holds at their view's generation, absent
/// rows included, and a lookup the cache cannot answer fails (`NotCached`) rather than reading
/// anything older or newer.
#[test]
fn cache_only_lookups_answer_what_the_cache_holds_at_their_generation_and_nothing_else() {
    use alliance_gateway::db::DbError;
    use alliance_gateway::registry::CacheOnly;
    let (_dir, pool) = setup();
    let mut gateway = pool.get().expect("gateway connection");
    let mut admin = pool.get().expect("admin connection");
    let registry = Registry::new();
    assert!(registry.cached_view().is_none(), "nothing cached yet");

    let view = registry.current(&mut gateway).expect("view");
    let cached = registry
        .cached_view()
        .expect("a cached view after the first read");
    assert_eq!(cached.generation(), view.generation());
    assert!(matches!(
        cached.partner(&mut CacheOnly, "P-RST-001"),
        Err(DbError::NotCached)
    ));
    // Read once through a connection, the row (and an absent one) answer without a database.
    view.partner(&mut gateway, "P-RST-001").expect("read");
    view.partner(&mut gateway, "P-NONE-01").expect("read");
    let hit = cached.partner(&mut CacheOnly, "P-RST-001").expect("cached");
    assert_eq!(hit.expect("partner").status, Partner::ACTIVE);
    assert!(cached
        .partner(&mut CacheOnly, "P-NONE-01")
        .expect("cached absence")
        .is_none());

    // Once a request has read a newer generation, the older view's cache-only lookups miss:
    // the suspension is never hidden behind the row cached before it.
    suspend(&mut admin);
    let newer = registry.current(&mut gateway).expect("view");
    assert!(newer.generation() > cached.generation());
    assert!(matches!(
        cached.partner(&mut CacheOnly, "P-RST-001"),
        Err(DbError::NotCached)
    ));
    assert_eq!(
        registry.cached_view().expect("view").generation(),
        newer.generation()
    );
}
