//! The store a test server runs on: SQLite in its data dir (the default), or, with
//! `KEYWARD_TEST_DATABASE=postgres`, a PostgreSQL database of its own, created from
//! the maintenance database at `KEYWARD_TEST_POSTGRES_URL` and dropped afterwards.
//! An unreachable PostgreSQL fails the test; it is never skipped.

use sqlx::Connection;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A PostgreSQL database that exists as long as this guard does.
pub struct TestDatabase {
    name: String,
    pub url: String,
}

/// The database a new test server gets, if the run asks for PostgreSQL.
pub async fn for_new_server() -> Option<TestDatabase> {
    match std::env::var("KEYWARD_TEST_DATABASE").as_deref() {
        Err(_) | Ok("" | "sqlite") => None,
        Ok("postgres") => Some(TestDatabase::create().await),
        Ok(other) => panic!("KEYWARD_TEST_DATABASE must be sqlite or postgres, not `{other}`"),
    }
}

fn admin_url() -> String {
    std::env::var("KEYWARD_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

async fn admin() -> sqlx::PgConnection {
    let url = admin_url();
    sqlx::PgConnection::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "KEYWARD_TEST_DATABASE=postgres but PostgreSQL is not reachable at {url} ({e}): start it (e.g. \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`) or set KEYWARD_TEST_POSTGRES_URL"
        )
    })
}

impl TestDatabase {
    async fn create() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let salt = std::collections::hash_map::RandomState::new().build_hasher().finish();
        let name = format!("kw_e2e_{}_{}_{salt:016x}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let mut conn = admin().await;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
        let _ = conn.close().await;
        let admin = admin_url();
        let (base, query) = admin.split_once('?').map_or((admin.as_str(), None), |(b, q)| (b, Some(q)));
        let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
        let url = match query {
            Some(q) => format!("{server}/{name}?{q}"),
            None => format!("{server}/{name}"),
        };
        Self { name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop may run inside a runtime, which cannot block on itself: a thread of its own does it.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut conn = admin().await;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await.unwrap();
            });
        })
        .join();
    }
}
