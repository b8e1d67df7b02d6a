//! The store suite against PostgreSQL: every behaviour in a database of its own,
//! created for the test and dropped after it, so tests run in parallel. These tests
//! need a running PostgreSQL (`KEYWARD_TEST_POSTGRES_URL`, default the local one)
//! and fail, never skip, when it is not there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

#[macro_use]
mod store_suite;

use keyward_core::store::Store;
use keyward_store::postgres::PostgresStore;
use sqlx::Connection;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The maintenance database: where test databases are created and dropped from.
fn admin_url() -> String {
    std::env::var("KEYWARD_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// `url` with its database replaced by `db`.
fn url_for(db: &str) -> String {
    let admin = admin_url();
    let (base, query) = admin.split_once('?').map_or((admin.as_str(), None), |(b, q)| (b, Some(q)));
    let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
    match query {
        Some(q) => format!("{server}/{db}?{q}"),
        None => format!("{server}/{db}"),
    }
}

async fn admin() -> sqlx::PgConnection {
    let url = admin_url();
    sqlx::PgConnection::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {url} ({e}); these tests need it: start it (e.g. \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`) or set KEYWARD_TEST_POSTGRES_URL"
        )
    })
}

/// A database that exists as long as this guard does.
struct TestDb {
    name: String,
}

impl TestDb {
    async fn create() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let salt = std::collections::hash_map::RandomState::new().build_hasher().finish();
        let name = format!("kw_test_{}_{}_{salt:016x}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let mut conn = admin().await;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        Self { name }
    }

    fn url(&self) -> String {
        url_for(&self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot block on itself: a thread of its own does it.
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut conn = admin().await;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await.unwrap();
            });
        })
        .join();
        if dropped.is_err() && !std::thread::panicking() {
            panic!("could not drop the test database {}", self.name);
        }
    }
}

/// A fresh store in a new database (the guard).
async fn fresh() -> (TestDb, PostgresStore) {
    let db = TestDb::create().await;
    let store = PostgresStore::open_url(&db.url()).await.unwrap();
    (db, store)
}

store_suite_tests!(fresh);

#[tokio::test]
async fn reconnecting_keeps_everything_and_migrations_are_idempotent() {
    let db = TestDb::create().await;
    let store = PostgresStore::open_url(&db.url()).await.unwrap();
    store_suite::populate(&store).await;
    let before = store_suite::snapshot(&store).await;
    store.close().await;

    let store = PostgresStore::open_url(&db.url()).await.unwrap();
    store.ping().await.unwrap();
    store_suite::keeps_working_after_reopen(&store, &before).await;
    let after = store_suite::snapshot(&store).await;
    Store::close(&store).await;

    let store = PostgresStore::open_url(&db.url()).await.unwrap();
    assert_eq!(store_suite::snapshot(&store).await, after, "and the writes made after the reconnect too");
    store.close().await;
}

/// Two stores over one database: two instances of the service.
async fn two_instances() -> (TestDb, PostgresStore, PostgresStore) {
    let db = TestDb::create().await;
    let a = PostgresStore::open_url(&db.url()).await.unwrap();
    let b = PostgresStore::open_url(&db.url()).await.unwrap();
    (db, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_hold_when_two_instances_create_at_once() {
    let (_db, a, b) = two_instances().await;
    store_suite::seed_a(&a).await;
    let limits = store_suite::limits(3, &[("role_x", 2)]);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let limits = limits.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("kw_race_{i:02}");
            let roles = if i < 8 { vec![store_suite::rid("role_x")] } else { vec![] };
            let k = keyward_core::model::KeyRecord { roles, ..store_suite::key(&id, "usr_a", "org_a") };
            store.insert_key(&k, &limits, &store_suite::ev("org_a", "key.create", &id)).await
        }));
    }
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => created += 1,
            Err(e) => assert!(
                matches!(store_suite::conflict::<()>(Err(e)), keyward_core::Conflict::KeyLimitReached(_)),
                "only the limit may refuse a create"
            ),
        }
    }
    let keys = store_suite::keys_by_id(&a).await;
    assert_eq!((created, keys.len()), (3, 3), "exactly the limit was created: {:?}", store_suite::ids(&keys));
    let with_role = keys.iter().filter(|k| !k.roles.is_empty()).count();
    assert!(with_role <= 2, "the role cap held: {with_role} keys carry the role");
    let creates = store_suite::org_audit(&a, "org_a").await.iter().filter(|e| e.event.action == "key.create").count();
    assert_eq!(creates, 3, "one audit entry per created key, none for the refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_from_two_instances_keep_every_chain_intact() {
    let (_db, a, b) = two_instances().await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let org = if i % 3 == 0 { "org_b" } else { "org_a" };
            let events = vec![
                store_suite::ev(org, "key.use_refused", &format!("kw_{i}")),
                store_suite::ev("org_c", "token.issue", &format!("kw_{i}")),
            ];
            store.append_audit(&events).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let mut total = 0;
    for org in ["org_a", "org_b", "org_c"] {
        let entries = store_suite::org_audit(&b, org).await;
        store_suite::assert_chain(&entries, keyward_core::audit::GENESIS_HASH);
        total += entries.len();
    }
    assert_eq!(total, 80);
}
