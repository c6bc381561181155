//! Shared pieces of the end-to-end tests: a gateway started in-process on a real socket with a
//! temporary SQLite store, the HTTP target emulator, a webhook receiver, and a small client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use qaqpa::auth::{generate_key, Role};
use qaqpa::config::{Config, StoreConfig};
use qaqpa::state::AppState;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

type HookState = (Arc<Mutex<Vec<Hook>>>, Arc<watch::Sender<usize>>);

pub const MASTER_SECRET: &[u8] = b"test master secret, 32 bytes at least!";

/// A gateway running in this process.
pub struct Gateway {
    pub url: String,
    pub state: AppState,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts a gateway whose routes are `routes` (TOML text), tuning the config with `tune`.
    pub async fn start_with(routes: &str, tune: impl FnOnce(&mut Config)) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let routes_path = dir.path().join("routes.toml");
        std::fs::write(&routes_path, routes).expect("write routes");
        let mut cfg = Config {
            routes: routes_path,
            store: StoreConfig::Sqlite {
                data_dir: dir.path().join("data"),
            },
            ..Config::default()
        };
        cfg.engine.poll_ms = 50;
        cfg.webhooks.poll_ms = 50;
        tune(&mut cfg);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = qaqpa::gateway::build_state(cfg, MASTER_SECRET)
            .await
            .expect("gateway state");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let state = state.clone();
            let shutdown = shutdown.clone();
            async move {
                qaqpa::gateway::run(state, listener, shutdown)
                    .await
                    .expect("gateway runs");
            }
        });
        Gateway {
            url: format!("http://{addr}"),
            state,
            http: reqwest::Client::new(),
            shutdown,
            task: Some(task),
            _dir: dir,
        }
    }

    pub async fn start(routes: &str) -> Gateway {
        Self::start_with(routes, |_| {}).await
    }

    /// A fresh API key's token.
    pub async fn key(&self, client: &str, role: Role) -> String {
        let k = generate_key(client, role, "test");
        self.state
            .store
            .create_api_key(k.record)
            .await
            .expect("create key");
        k.token
    }

    pub async fn post_json(
        &self,
        token: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Submits a message, expects `202 Accepted`, and returns its id.
    pub async fn submit(&self, token: &str, body: &serde_json::Value) -> String {
        let r = self.post_json(token, "/v1/messages", body).await;
        assert_eq!(r.status(), 202, "submit refused");
        let v: serde_json::Value = r.json().await.expect("accepted json");
        v["id"].as_str().expect("id").to_string()
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// Polls a message until `done` holds for its JSON view, or fails after `limit`.
    pub async fn wait_message(
        &self,
        token: &str,
        id: &str,
        limit: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let v: serde_json::Value = self
                .get(token, &format!("/v1/messages/{id}"))
                .await
                .json()
                .await
                .expect("message json");
            if done(&v) {
                return v;
            }
            assert!(
                start.elapsed() < limit,
                "message {id} did not reach the expected state in {limit:?}: {v:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// Routes sending `http.post` to the emulator at `url`.
pub fn echo_routes(url: &str, extra: &str) -> String {
    format!(
        r#"
[[route]]
name = "echo"
adapter = "http"
kinds = ["http.post"]
timeout_ms = 2000

backoff_base_ms = 10
backoff_cap_ms = 100
{extra}
[route.settings]
url = "{url}/deliver"
"#
    )
}

/// One webhook request as received.
#[derive(Clone, Debug)]
pub struct Hook {
    pub signature: String,
    pub event_id: String,
    pub body: Bytes,
}

/// A webhook receiver on a real socket.
#[derive(Clone)]
pub struct HookSink {
    pub addr: SocketAddr,
    hooks: Arc<Mutex<Vec<Hook>>>,
    count: watch::Receiver<usize>,
}

impl HookSink {
    pub async fn start() -> HookSink {
        let hooks = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = watch::channel(0usize);
        let tx = Arc::new(tx);
        let app = Router::new()
            .route(
                "/hook",
                post(
                    |State((hooks, tx)): State<HookState>,
                     headers: HeaderMap,
                     body: Bytes| async move {
                        let h = |n: &str| {
                            headers
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string()
                        };
                        let n = {
                            let mut v = hooks.lock().expect("lock");
                            v.push(Hook {
                                signature: h("qaqpa-signature"),
                                event_id: h("qaqpa-event-id"),
                                body,
                            });
                            v.len()
                        };
                        tx.send_replace(n);
                        "ok"
                    },
                ),
            )
            .with_state((hooks.clone(), tx));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HookSink {
            addr,
            hooks,
            count: rx,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Waits until at least `n` webhooks arrived.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Hook> {
        let mut rx = self.count.clone();
        tokio::time::timeout(limit, rx.wait_for(|c| *c >= n))
            .await
            .expect("webhooks in time")
            .expect("sink alive");
        self.hooks.lock().expect("lock").clone()
    }
}
