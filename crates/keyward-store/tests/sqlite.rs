//! The store suite against SQLite: every behaviour on a fresh database file,
//! plus what only a file-backed store has (reopening, migrations).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

#[macro_use]
mod store_suite;

use keyward_core::store::Store;
use keyward_store::sqlite::SqliteStore;
use std::path::Path;
use tempfile::TempDir;

/// A fresh store on `keyward.db` in a new temporary directory (the guard).
async fn fresh() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    (dir, store)
}

async fn open(dir: &Path) -> SqliteStore {
    SqliteStore::open(&dir.join("keyward.db")).await.unwrap()
}

store_suite_tests!(fresh);

#[tokio::test]
async fn reopening_the_database_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    store_suite::populate(&store).await;
    let before = store_suite::snapshot(&store).await;
    store.close().await;
    drop(store);

    let store = open(dir.path()).await;
    store_suite::keeps_working_after_reopen(&store, &before).await;
    let after = store_suite::snapshot(&store).await;
    store.close().await;
    drop(store);

    let store = open(dir.path()).await;
    assert_eq!(store_suite::snapshot(&store).await, after, "and the writes made after the reopen too");
    store.close().await;
}

#[tokio::test]
async fn reopening_without_close_keeps_committed_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    store_suite::populate(&store).await;
    let before = store_suite::snapshot(&store).await;
    drop(store);

    let store = open(dir.path()).await;
    assert_eq!(store_suite::snapshot(&store).await, before);
    store.close().await;
}

#[tokio::test]
async fn migrations_are_idempotent_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..3 {
        let store = open(dir.path()).await;
        store.ping().await.unwrap();
        assert!(store.list_orgs().await.unwrap().is_empty());
        store.close().await;
    }
    let store = open(dir.path()).await;
    store_suite::populate(&store).await;
    let before = store_suite::snapshot(&store).await;
    store.close().await;
    for _ in 0..2 {
        let store = open(dir.path()).await;
        store.ping().await.unwrap();
        assert_eq!(store_suite::snapshot(&store).await, before);
        store.close().await;
    }
}

#[tokio::test]
async fn open_url_reaches_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    store_suite::populate(&store).await;
    let before = store_suite::snapshot(&store).await;
    store.close().await;

    let url = format!("sqlite://{}", dir.path().join("keyward.db").display());
    let store = SqliteStore::open_url(&url).await.unwrap();
    assert_eq!(store_suite::snapshot(&store).await, before);
    store.close().await;
}
