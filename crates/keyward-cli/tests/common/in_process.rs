//! The whole service in this test process, on port 0, with a manual clock: the same
//! `build` and `serve_on` as the binary, the real SQLite store in a temporary data dir;
//! only the process boundary and the clock differ.

use keyward_core::clock::ManualClock;
use keyward_server::config::{Config, ServeArgs};
use keyward_server::state::AppState;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;

/// A service running on its own runtime and thread, so that tests may block (on a
/// Python client, say) while it answers.
pub struct Running {
    pub addr: SocketAddr,
    /// The bootstrap admin key (id, secret) when this start created it.
    pub admin: Option<(String, String)>,
    state: AppState,
    runtime: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Ready {
    addr: SocketAddr,
    admin: Option<(String, String)>,
    state: AppState,
    runtime: tokio::runtime::Handle,
}

impl Running {
    /// Builds the service on `data_dir` (and the store at `database_url`, if given) with `clock`
    /// and serves it until stopped.
    pub async fn start(data_dir: PathBuf, database_url: Option<String>, clock: Arc<ManualClock>) -> Self {
        let (ready_tx, ready_rx) = oneshot::channel::<Ready>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the in-process server");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
                let addr = listener.local_addr().unwrap();
                let args = ServeArgs {
                    listen: Some(addr.to_string()),
                    data_dir: Some(data_dir),
                    database_url,
                    ..Default::default()
                };
                let config = Config::load(args).expect("a valid test configuration");
                let (app, admin) = keyward_server::build(config, clock, addr).await.expect("the service builds");
                let ready = Ready {
                    addr,
                    admin: admin.map(|a| (a.key_id.to_string(), a.secret.expose().to_owned())),
                    state: app.state.clone(),
                    runtime: tokio::runtime::Handle::current(),
                };
                if ready_tx.send(ready).is_err() {
                    return;
                }
                let stop = async {
                    let _ = stop_rx.await;
                };
                keyward_server::serve_on(app, listener, stop).await.expect("the service serves");
            });
        });
        let Ok(ready) = ready_rx.await else {
            // The thread panicked before it was ready; its message is the useful one.
            let cause = thread.join().err().and_then(|e| e.downcast_ref::<String>().cloned());
            panic!("the in-process server did not start: {}", cause.unwrap_or_default());
        };
        Self {
            addr: ready.addr,
            admin: ready.admin,
            state: ready.state,
            runtime: ready.runtime,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Runs the background writers once now (last-used times, refused uses whose window
    /// has closed, a full index reconciliation) instead of waiting for their tick.
    pub async fn flush(&self) {
        let state = self.state.clone();
        self.runtime
            .spawn(async move {
                keyward_server::write_in_background_once(&state, true, false).await;
                // Refused uses whose window has closed by the manual clock, as the refusal writer would.
                keyward_server::audit::flush_failures(&state, false).await;
            })
            .await
            .expect("the background writers ran");
    }

    /// Shuts down gracefully (as on SIGTERM) and waits until the store is closed.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let result = thread.join();
            // A panic while unwinding would abort the test binary and hide the first failure.
            if !std::thread::panicking() {
                assert!(result.is_ok(), "the in-process server failed while stopping");
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}
