//! The limit for bench/run.sh: a minimal axum hello-world on the same stack (axum, hyper,
//! tokio, the same build profile) that Keyward is measured against. Not a criterion
//! benchmark: run by the harness with `HELLO_LISTEN=127.0.0.1:PORT`; under plain
//! `cargo bench` it does nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::routing::get;

fn main() {
    let Ok(addr) = std::env::var("HELLO_LISTEN") else {
        println!("hello: the limit server of bench/run.sh; set HELLO_LISTEN to run it");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let app = Router::new().route("/", get(|| async { "Hello, World!" }));
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        println!("hello listening on {addr}");
        axum::serve(listener, app).await.unwrap();
    });
}
