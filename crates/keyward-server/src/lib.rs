//! Keyward's HTTP service: configuration, state, the router and `serve`.

pub mod api;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod connections;
pub mod console;
pub mod extract;
pub mod handlers;
pub mod index;
pub mod metrics;
pub mod nonce;
pub mod problem;
pub mod sessions;
pub mod state;
pub mod tokens;
pub mod usage;
pub mod views;

use crate::config::{Config, StoreLocation};
use crate::index::KeyIndex;
use crate::nonce::NonceCache;
use crate::state::AppState;
use crate::tokens::TokenKeys;
use crate::usage::UsageRecorder;
use anyhow::Context;
use axum::extract::{MatchedPath, Request};
use keyward_core::clock::{Clock, SystemClock};
use keyward_core::crypto::Keyring;
use keyward_core::store::Store;
use keyward_store::postgres::PostgresStore;
use keyward_store::sqlite::SqliteStore;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower_http::trace::TraceLayer;

pub use api::router;

/// How often pending last-used times are written.
const USAGE_FLUSH_INTERVAL: Duration = Duration::from_secs(2);
/// How often closed windows of refused uses are looked for.
const REFUSAL_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// The key index is reconciled with the store every minute.
const RECONCILE_EVERY_TICKS: u64 = 30;
/// Retention runs at start (before serving) and then hourly.
const RETENTION_EVERY_TICKS: u64 = 1800;

/// Opens the configured store, the backend chosen by its location, running its migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let opened: Result<Arc<dyn Store>, _> = match &config.store {
        StoreLocation::Sqlite(path) => SqliteStore::open(path).await.map(|s| Arc::new(s) as _),
        StoreLocation::SqliteUrl(url) => SqliteStore::open_url(url).await.map(|s| Arc::new(s) as _),
        StoreLocation::Postgres(url) => PostgresStore::open_url(url.expose()).await.map(|s| Arc::new(s) as _),
    };
    // The location as shown masks a password.
    opened.with_context(|| format!("cannot open the store {}", config.store))
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Whatever the server or SQLite creates from now on is its owner's only.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let (app, admin) = build(config, Arc::new(SystemClock), listener.local_addr()?).await?;
    if let Some(admin) = admin {
        // Printed once, straight to stdout and never through the log.
        println!(
            "\nKeyward bootstrap admin API key (shown once; also saved to {}):\n  id:     {}\n  secret: {}\n\
             Web console sign-in at {}/ (one-time password; you choose a new one at first sign-in):\n  email:    {}\n  password: {}\n",
            admin.file.display(),
            admin.key_id,
            admin.secret.expose(),
            app.state.issuer,
            admin.email,
            admin.password.expose()
        );
    }
    serve_on(app, listener, shutdown_signal()).await
}

/// The service built from a configuration and a clock, ready to serve.
pub struct App {
    pub state: AppState,
}

/// Prepares the data dir, opens and bootstraps the store, and builds the state for a
/// listener at `addr`; returns the bootstrap admin key when one was just created.
pub async fn build(
    config: Config,
    clock: Arc<dyn Clock>,
    addr: SocketAddr,
) -> anyhow::Result<(App, Option<bootstrap::BootstrapAdmin>)> {
    // Hawk nonces are remembered from here on; requests signed earlier are sent back to re-sign.
    let started = clock.now();
    bootstrap::prepare_data_dir(&config.data_dir)?;
    let remains = bootstrap::earlier_life(&config.data_dir);
    let (master, new_key_file) = bootstrap::load_master_key(
        &config.data_dir,
        std::env::var(bootstrap::MASTER_KEY_ENV).ok().filter(|v| !v.is_empty()),
    )?;
    let keyring = Arc::new(Keyring::new(&master));

    let store = open_store(&config).await?;
    let store_name = config.store.to_string();
    bootstrap::refuse_lost_store(store.as_ref(), &remains, &store_name).await?;

    if let Some(path) = new_key_file {
        if store.get_meta("master_key_check").await?.is_some() {
            anyhow::bail!(
                "the master key file {} is missing but the store holds data written under a master key; restore it or set {}",
                path.display(),
                bootstrap::MASTER_KEY_ENV
            );
        }
        bootstrap::write_private_file(&path, &master.to_hex())
            .with_context(|| format!("cannot write the master key {}", path.display()))?;
        tracing::info!(path = %path.display(), "generated a new master key");
    }
    bootstrap::check_master_key(store.as_ref(), &keyring).await?;

    let email = std::env::var(bootstrap::BOOTSTRAP_EMAIL_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| bootstrap::BOOTSTRAP_EMAIL.to_owned());
    let admin = bootstrap::bootstrap(store.as_ref(), &keyring, &config.data_dir, email.trim(), clock.now()).await?;

    let index = Arc::new(KeyIndex::new(keyring.clone()));
    index.reload(store.as_ref()).await.context("cannot load the key index")?;
    let usage = Arc::new(UsageRecorder::default());
    let tokens = Arc::new(TokenKeys::load(store.as_ref(), keyring.clone(), clock.now()).await?);
    let issuer: Arc<str> = config.public_url.clone().unwrap_or_else(|| format!("http://{addr}")).into();
    // Hawk requests signed in the second the process started are refused (the process before
    // may have seen them); serve only once that second is over, so no fresh request meets it.
    let second_over = (started.timestamp() + 1) * 1000 - clock.now().timestamp_millis();
    tokio::time::sleep(Duration::from_millis(u64::try_from(second_over).unwrap_or(0))).await;
    let state = AppState {
        config: Arc::new(config.clone()),
        store,
        keyring,
        index,
        usage,
        clock,
        failures: Arc::default(),
        failures_due: Arc::default(),
        throttle: Arc::default(),
        nonces: Arc::new(NonceCache::since(started)),
        tokens,
        issuer,
        sessions: Arc::default(),
        hawk_authority: hawk_authority(&config, addr).map(Arc::new),
        metrics: Arc::default(),
        key_writes: Arc::default(),
    };
    Ok((App { state }, admin))
}

/// The access-log line of a response, as `mode` says: errors and refusals always, other
/// requests all, one in [`config::ACCESS_LOG_SAMPLE`] or none. (The line goes to the
/// binary's non-blocking writer: the request never waits on it.)
fn access_log<B>(
    mode: config::AccessLog,
) -> impl Fn(&axum::http::Response<B>, Duration, &tracing::Span) + Clone + Send + Sync + 'static {
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    move |res, latency, _span| {
        let status = res.status();
        let refused = matches!(status.as_u16(), 401 | 403 | 429);
        let logged = status.is_server_error()
            || refused
            || match mode {
                config::AccessLog::On => true,
                config::AccessLog::Off => false,
                config::AccessLog::Sampled => {
                    seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed).is_multiple_of(config::ACCESS_LOG_SAMPLE)
                }
            };
        if logged {
            let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            tracing::info!(status = status.as_u16(), latency_us, "finished processing request");
        }
    }
}

/// Serves `app` on `listener`, with the background writers running, until `shutdown`
/// resolves; then writes what is pending and closes the store.
pub async fn serve_on(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let App { state } = app;
    let addr = listener.local_addr()?;
    // Retention runs once before serving, so no request sees what it is about to prune.
    audit::apply_retention(&state).await;
    let background = tokio::spawn(background_writers(state.clone()));
    let (stop_refusals, stop) = tokio::sync::oneshot::channel();
    let refusals = tokio::spawn(refusal_writer(state.clone(), stop));

    let app = router(state.clone()).layer(
        TraceLayer::new_for_http()
            .make_span_with(|req: &Request| {
                // The matched route, never the raw URI: query strings can carry credentials.
                let route = req.extensions().get::<MatchedPath>().map_or("-", MatchedPath::as_str);
                tracing::info_span!("request", method = %req.method(), route = %route)
            })
            .on_response(access_log(state.config.access_log)),
    );
    let config = &state.config;
    let limits = connections::ConnectionLimits {
        header_timeout: config.header_timeout,
        body_timeout: config.body_timeout,
        max_connections: config
            .max_connections
            .unwrap_or_else(|| connections::default_max_connections(connections::raise_fd_limit())),
    };
    tracing::info!(%addr, store = %config.store, max_connections = limits.max_connections, "keyward listening");
    connections::serve(listener, app, limits, shutdown).await;

    background.abort();
    // Stopped, not aborted: a write under way finishes, then what is left of every window follows.
    let _ = stop_refusals.send(());
    if let Err(e) = refusals.await {
        tracing::warn!(error = %e, "the refused-use writer failed");
    }
    if let Err(e) = state.usage.flush(state.store.as_ref()).await {
        tracing::warn!(error = %e, "could not write the last last-used times");
    }
    state.store.close().await;
    tracing::info!("keyward stopped");
    Ok(())
}

/// What Hawk requests must be signed for: the public URL's host and port, else
/// the address the server listens on (with `localhost` for loopback).
fn hawk_authority(config: &Config, addr: SocketAddr) -> Option<(Vec<String>, u16)> {
    if let Some((host, port)) = &config.public_authority {
        return Some((vec![host.clone()], *port));
    }
    if addr.ip().is_unspecified() {
        tracing::warn!(
            "listening on every address without --public-url: Hawk requests are checked against any Host; set --public-url to pin it"
        );
        return None;
    }
    let mut hosts = vec![addr.ip().to_string()];
    if addr.ip().is_loopback() {
        hosts.push("localhost".into());
    }
    Some((hosts, addr.port()))
}

/// Writes refused uses to the audit log: a window's first refusal as soon as it
/// happens, the rest when the window closes (checked every second), and
/// everything still open when told to stop.
async fn refusal_writer(state: AppState, mut stop: tokio::sync::oneshot::Receiver<()>) {
    loop {
        tokio::select! {
            _ = &mut stop => break,
            () = state.failures_due.notified() => {},
            () = tokio::time::sleep(REFUSAL_CHECK_INTERVAL) => {},
        }
        audit::flush_failures(&state, false).await;
    }
    audit::flush_failures(&state, true).await;
}

/// Writes what accompanies requests in batches: last-used times every two
/// seconds, the index reconciled every minute, retention hourly.
async fn background_writers(state: AppState) {
    let mut tick = tokio::time::interval(USAGE_FLUSH_INTERVAL);
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        // The safety net behind refreshing after each write: a failed refresh, and a full
        // reconciliation every minute.
        let reconcile = ticks.is_multiple_of(RECONCILE_EVERY_TICKS) && ticks > 0;
        let retention = ticks.is_multiple_of(RETENTION_EVERY_TICKS) && ticks > 0;
        write_in_background_once(&state, reconcile, retention).await;
        ticks += 1;
    }
}

/// One round of the background writers: pending last-used times, the index (reconciled in full when
/// `reconcile`), and retention when `retention`. Tests call it instead of waiting a tick.
pub async fn write_in_background_once(state: &AppState, reconcile: bool, retention: bool) {
    if let Err(e) = state.usage.flush(state.store.as_ref()).await {
        tracing::warn!(error = %e, "could not write last-used times; will retry");
    }
    let result = if reconcile {
        state.index.reload(state.store.as_ref()).await.map(|()| true)
    } else {
        state.index.reload_if_stale(state.store.as_ref()).await
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not reload the key index; will retry");
    }
    if retention {
        audit::apply_retention(state).await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod open_store_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::ServeArgs;

    fn config(database_url: &str) -> Config {
        Config::load(ServeArgs { database_url: Some(database_url.into()), ..ServeArgs::default() }).unwrap()
    }

    #[tokio::test]
    async fn a_postgres_store_that_cannot_be_reached_says_why_without_its_password() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let err = open_store(&config("postgres://kw:hunter2@127.0.0.1:1/keyward")).await.err().unwrap();
        let shown = format!("{err:#}");
        assert!(shown.contains("postgres://kw:***@127.0.0.1:1/keyward"), "{shown}");
        assert!(shown.contains("refused"), "the cause is named: {shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[tokio::test]
    async fn a_sqlite_url_opens_sqlite_behind_the_trait() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        let store = open_store(&config(&url)).await.unwrap();
        store.ping().await.unwrap();
        store.close().await;
        assert!(dir.path().join("k.db").exists());
    }
}
