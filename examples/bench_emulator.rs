//! The HTTP target emulator for `bench/run.sh`: listens on the given address and answers the
//! number of distinct messages received on `GET /count` at the port ten above it.
use std::net::SocketAddr;

use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".into())
        .parse()
        .map_err(|e| std::io::Error::other(format!("bad address: {e}")))?;
    // Counting only: stored bodies would dominate the memory of a long run.
    let emu = qaqpa_adapter_http::Emulator::start_with_state(
        addr,
        qaqpa_adapter_http::EmulatorState::counting_only(),
    )
    .await?;
    let state = emu.state();
    let count_addr = SocketAddr::new(addr.ip(), addr.port() + 10);
    let app = axum::Router::new().route(
        "/count",
        get(move || {
            let state = state.clone();
            async move { state.distinct().to_string() }
        }),
    );
    let listener = tokio::net::TcpListener::bind(count_addr).await?;
    axum::serve(listener, app).await
}
