//! Whole-process behaviour: the real `qaqpa` binary SIGKILLed under load loses nothing it
//! acknowledged; two processes on one PostgreSQL share the work without delivering a message
//! twice, and when one dies the other finishes its messages; the dead one, restarted,
//! journals that its previous run ended without a clean stop.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qaqpa_adapter_http::{Emulator, EmulatorHandle, Faults};
use serde_json::json;

const SECRET: &str = "process test master secret, long enough";

fn write_config(
    dir: &Path,
    listen: &str,
    emulator: &str,
    store: &str,
    engine: &str,
) -> std::path::PathBuf {
    let routes = format!(
        "[[route]]\nname = \"echo\"\nadapter = \"http\"\nkinds = [\"http.post\"]\ntimeout_ms = 5000\nmax_attempts = 100\nbackoff_base_ms = 20\nbackoff_cap_ms = 200\n[route.limits]\nconcurrency = 64\nbreaker_failures = 100000\n[route.settings]\nurl = \"{emulator}/deliver\"\n"
    );
    std::fs::write(dir.join("routes.toml"), routes).expect("routes");
    let cfg = format!(
        "listen = \"{listen}\"\nroutes = \"routes.toml\"\n{store}\n[engine]\npoll_ms = 50\n{engine}\n[log]\nfilter = \"warn\"\n"
    );
    let path = dir.join("qaqpa.toml");
    std::fs::write(&path, cfg).expect("config");
    path
}

fn qaqpa() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_qaqpa"));
    c.env("QAQPA_WEBHOOK_SECRET", SECRET);
    c
}

fn create_key(config: &Path, envs: &[(&str, String)]) -> String {
    let mut cmd = qaqpa();
    cmd.args([
        "keys",
        "create",
        "--client",
        "edms-load",
        "--role",
        "client",
        "--config",
    ])
    .arg(config);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run qaqpa keys create");
    assert!(
        out.status.success(),
        "keys create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("token:"))
        .map(|t| t.trim().to_string())
        .expect("token printed")
}

fn spawn_gateway(config: &Path, envs: &[(&str, String)]) -> Child {
    let mut cmd = qaqpa();
    cmd.args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn qaqpa serve")
}

async fn wait_healthy(url: &str, child: &mut Child) {
    let start = Instant::now();
    let http = reqwest::Client::new();
    loop {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("gateway exited early with {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "gateway at {url} not ready in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Posts messages with unique sequence numbers until `stop` is set; records the ids answered 202.
async fn load(
    url: String,
    token: String,
    seq: Arc<Mutex<u64>>,
    accepted: Arc<Mutex<BTreeMap<u64, String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let n = {
            let mut s = seq.lock().expect("lock");
            *s += 1;
            *s
        };
        let r = http
            .post(format!("{url}/v1/messages"))
            .bearer_auth(&token)
            .json(&json!({"kind": "http.post", "to": "load", "document": {"seq": n}}))
            .send()
            .await;
        match r {
            Ok(resp) if resp.status() == 202 => {
                if let Ok(v) = resp.json::<serde_json::Value>().await {
                    if let Some(id) = v["id"].as_str() {
                        accepted.lock().expect("lock").insert(n, id.to_string());
                    }
                }
            }
            Ok(resp) => panic!("unexpected status {} under load", resp.status()),
            // The gateway was killed under us: this request was never acknowledged.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn wait_all_delivered(emu: &EmulatorHandle, ids: &BTreeSet<String>, limit: Duration) {
    let start = Instant::now();
    loop {
        let got = emu.received();
        let missing = ids.iter().filter(|id| got.count(id) == 0).count();
        if missing == 0 {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{missing} acknowledged messages never reached the target"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every id the target got carries one sequence number, and no sequence number arrived under two
/// ids: duplicates exist only as repeats of the same message id.
fn assert_duplicates_only_under_one_id(emu: &EmulatorHandle) {
    let got = emu.received();
    let mut by_seq: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for (id, m) in &got.messages {
        let seq = m.body.as_ref().expect("body kept").document["seq"]
            .as_u64()
            .expect("seq in document");
        by_seq.entry(seq).or_default().insert(id.clone());
    }
    for (seq, ids) in by_seq {
        assert_eq!(
            ids.len(),
            1,
            "document {seq} reached the target under several ids: {ids:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_no_acknowledged_message() {
    let emu = Emulator::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator");
    // A little latency keeps attempts in flight when the process dies.
    emu.set_faults(Faults {
        delay_ms: 5,
        ..Faults::default()
    })
    .expect("faults");
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let config = write_config(
        dir.path(),
        &format!("127.0.0.1:{port}"),
        &emu.url(),
        "[store]\nkind = \"sqlite\"\ndata_dir = \"data\"",
        "lease_secs = 2\nshutdown_grace_secs = 1",
    );
    let token = create_key(&config, &[]);
    let seq = Arc::new(Mutex::new(0u64));
    let accepted = Arc::new(Mutex::new(BTreeMap::new()));
    for round in 0..3 {
        let mut child = spawn_gateway(&config, &[]);
        wait_healthy(&url, &mut child).await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let before = accepted.lock().expect("lock").len();
        let loaders: Vec<_> = (0..4)
            .map(|_| {
                tokio::spawn(load(
                    url.clone(),
                    token.clone(),
                    seq.clone(),
                    accepted.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        // Kill once this round has had 200 acknowledgements, mid-stream.
        let start = Instant::now();
        while accepted.lock().expect("lock").len() < before + 200 {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "round {round}: load did not progress"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for l in loaders {
            l.await.expect("loader");
        }
    }
    // One last life to finish the work.
    let mut child = spawn_gateway(&config, &[]);
    wait_healthy(&url, &mut child).await;
    let ids: BTreeSet<String> = accepted.lock().expect("lock").values().cloned().collect();
    assert!(ids.len() >= 600);
    wait_all_delivered(&emu, &ids, Duration::from_secs(120)).await;
    assert_duplicates_only_under_one_id(&emu);
    child.kill().expect("kill");
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_one_postgres_share_work_and_take_over_when_one_dies() {
    let pg = match qaqpa_store::testing::TempPostgres::shared() {
        Ok(pg) => pg,
        Err(e) => panic!(
            "a throwaway PostgreSQL could not start (install the Debian 'postgresql' package): {e}"
        ),
    };
    let db_url = pg.create_database().await.expect("database");
    let envs = [("QAQPA_DATABASE_URL", db_url.clone())];
    let emu = Emulator::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator");
    emu.set_faults(Faults {
        delay_ms: 10,
        ..Faults::default()
    })
    .expect("faults");
    let store = "[store]\nkind = \"postgres\"";
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let (port_a, port_b) = (free_port(), free_port());
    let cfg_a = write_config(
        dir_a.path(),
        &format!("127.0.0.1:{port_a}"),
        &emu.url(),
        store,
        "worker_id = \"replica-a\"\nlease_secs = 3\nclaim_batch = 16",
    );
    let cfg_b = write_config(
        dir_b.path(),
        &format!("127.0.0.1:{port_b}"),
        &emu.url(),
        store,
        "worker_id = \"replica-b\"\nlease_secs = 3\nclaim_batch = 16",
    );
    let token = create_key(&cfg_a, &envs);
    let mut a = spawn_gateway(&cfg_a, &envs);
    let mut b = spawn_gateway(&cfg_b, &envs);
    let (url_a, url_b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    wait_healthy(&url_a, &mut a).await;
    wait_healthy(&url_b, &mut b).await;

    let http = reqwest::Client::new();
    let post_batch = |from: u64, n: u64| {
        let http = http.clone();
        let token = token.clone();
        let urls = [url_a.clone(), url_b.clone()];
        async move {
            let mut ids = BTreeSet::new();
            for i in from..from + n {
                let r = http
                    .post(format!("{}/v1/messages", urls[(i % 2) as usize]))
                    .bearer_auth(&token)
                    .json(&json!({"kind": "http.post", "to": "pg", "document": {"seq": i}}))
                    .send()
                    .await
                    .expect("post");
                assert_eq!(r.status(), 202);
                let v: serde_json::Value = r.json().await.expect("json");
                ids.insert(v["id"].as_str().expect("id").to_string());
            }
            ids
        }
    };
    // Phase 1: both alive; every message delivered exactly once, by one of them.
    let first = post_batch(0, 300).await;
    wait_all_delivered(&emu, &first, Duration::from_secs(60)).await;
    let got = emu.received();
    for id in &first {
        assert_eq!(
            got.count(id),
            1,
            "message {id} delivered more than once while both replicas lived"
        );
    }
    let pg_store = qaqpa_store::PgStore::connect(&db_url, qaqpa_store::PgOptions::default())
        .await
        .expect("connect");
    let mut workers = BTreeSet::new();
    for id in first.iter().take(300) {
        let rec = qaqpa_store::Store::get_message(&pg_store, None, id.parse().expect("id"))
            .await
            .expect("get")
            .expect("exists");
        for att in rec.attempt_log {
            workers.insert(att.worker);
        }
    }
    assert!(
        workers.contains("replica-a") && workers.contains("replica-b"),
        "work was not shared: {workers:?}"
    );

    // Phase 2: slow target; kill A while it holds leases; B finishes A's work after they expire.
    emu.set_faults(Faults {
        delay_ms: 100,
        ..Faults::default()
    })
    .expect("faults");
    let second = post_batch(1000, 200).await;
    let start = Instant::now();
    while emu.received().messages.len() < first.len() + 20 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "phase 2 did not start delivering"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed_pid = a.id();
    a.kill().expect("SIGKILL replica A");
    let _ = a.wait();
    emu.set_faults(Faults {
        delay_ms: 2,
        ..Faults::default()
    })
    .expect("faults");
    wait_all_delivered(&emu, &second, Duration::from_secs(90)).await;
    assert_duplicates_only_under_one_id(&emu);

    // Phase 3: replica A comes back under its worker id and journals that its previous run
    // ended without a clean stop; B, which never stopped, and the first starts report nothing.
    let mut a = spawn_gateway(&cfg_a, &envs);
    wait_healthy(&url_a, &mut a).await;
    let journal = qaqpa_audit::PgAuditStore::connect(&db_url, 1)
        .await
        .expect("journal");
    let unclean = qaqpa_audit::AuditFilter {
        kind: Some("UNCLEAN_STOP".into()),
        ..Default::default()
    };
    let start = Instant::now();
    let found = loop {
        let page = qaqpa_audit::AuditStore::query(&journal, &unclean, None, 10)
            .await
            .expect("query");
        if !page.records.is_empty() || start.elapsed() > Duration::from_secs(20) {
            break page.records;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(found.len(), 1, "{found:#?}");
    match &found[0].event.kind {
        qaqpa_audit::EventKind::UncleanStop { previous_pid, .. } => {
            assert_eq!(*previous_pid, Some(killed_pid), "{found:#?}")
        }
        other => panic!("not an unclean stop: {other:?}"),
    }
    // A clean stop takes A's marker away.
    let _ = Command::new("kill")
        .args(["-TERM", &a.id().to_string()])
        .status();
    let status = a.wait().expect("wait A");
    assert!(status.success(), "{status}");
    let probe = qaqpa_audit::RunInfo {
        pid: 1,
        host: "probe".into(),
        started: time::OffsetDateTime::now_utc(),
    };
    let left = qaqpa_audit::PgRunMarkers::new(&db_url)
        .begin("replica-a", &probe)
        .await
        .expect("marker");
    assert_eq!(left, None, "a clean stop removes its run marker");
    b.kill().expect("kill B");
    let _ = b.wait();
}

/// Three free ports below the kernel's ephemeral range, for a process that binds them itself
/// (twice, across a restart): a port picked by binding port 0 is ephemeral, so another socket's
/// port 0 (the sandbox's test PKI binds one) or a connection to it before it is bound (polling
/// for readiness can connect to itself) could take it meanwhile; a port below the range cannot
/// be handed out so.
fn fixed_ports() -> [u16; 3] {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (first, last) = (10_000u16, low.saturating_sub(1));
    assert!(
        last > first + 100,
        "no room below the ephemeral ports ({low})"
    );
    let span = u32::from(last - first);
    let mut picked = Vec::new();
    // A start that differs between test runs, so parallel runs rarely try the same ports.
    let mut at = std::process::id() % span;
    for _ in 0..span {
        let port = first + (at % span) as u16;
        at += 7;
        if !picked.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            picked.push(port);
            if picked.len() == 3 {
                return [picked[0], picked[1], picked[2]];
            }
        }
    }
    panic!("no three free ports between {first} and {last}");
}

/// The README's main job, `qaqpa sandbox`, as a new user runs it: it starts with its emulators,
/// takes a message with the client key it wrote to `sandbox.env` and delivers it to its HTTP
/// emulator. Stopped (SIGTERM) and started again on the same data directory and addresses, it
/// journals its configuration as loaded again and nothing as added, removed or changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_delivers_with_the_key_it_wrote_and_a_restart_journals_no_configuration_change()
{
    let dir = tempfile::tempdir().expect("dir");
    let [gateway, emulator, esedo] = fixed_ports();
    let url = format!("http://127.0.0.1:{gateway}");
    let start = || {
        qaqpa()
            .args(["sandbox", "--listen", &format!("127.0.0.1:{gateway}")])
            .args(["--emulator-listen", &format!("127.0.0.1:{emulator}")])
            .args(["--esedo-listen", &format!("127.0.0.1:{esedo}")])
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn qaqpa sandbox")
    };
    let stop = |mut child: Child| {
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let status = child.wait().expect("wait sandbox");
        assert!(status.success(), "the sandbox stopped with {status}");
    };

    let mut sandbox = start();
    wait_healthy(&url, &mut sandbox).await;
    let env: BTreeMap<String, String> = std::fs::read_to_string(dir.path().join("sandbox.env"))
        .expect("sandbox.env")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(env["QAQPA_URL"], url);
    assert_eq!(
        env["QAQPA_EMULATOR_URL"],
        format!("http://127.0.0.1:{emulator}")
    );
    let http = reqwest::Client::new();
    let key = &env["QAQPA_API_KEY"];
    let accepted = http
        .post(format!("{url}/v1/messages"))
        .bearer_auth(key)
        .json(&json!({"kind": "http.post", "to": "sandbox-echo", "document": {"title": "Hello"}}))
        .send()
        .await
        .expect("post");
    assert_eq!(accepted.status(), 202);
    let id = accepted.json::<serde_json::Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let began = Instant::now();
    loop {
        let view: serde_json::Value = http
            .get(format!("{url}/v1/messages/{id}"))
            .bearer_auth(key)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if view["status"] == "delivered" {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "not delivered in 30 s: {view:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let received: qaqpa_adapter_http::emulator::ReceivedSummary = http
        .get(format!("{}/_control/received", env["QAQPA_EMULATOR_URL"]))
        .send()
        .await
        .expect("emulator")
        .json()
        .await
        .expect("summary");
    assert_eq!(
        received
            .messages
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        [id.as_str()]
    );
    stop(sandbox);

    let mut sandbox = start();
    wait_healthy(&url, &mut sandbox).await;
    stop(sandbox);

    let cfg = qaqpa::config::Config {
        store: qaqpa::config::StoreConfig::Sqlite {
            data_dir: dir.path().to_path_buf(),
        },
        ..Default::default()
    };
    let journal = qaqpa::audit::open_store(&cfg).await.expect("journal");
    let mut config_events = Vec::new();
    for kind in ["CONFIG_CREATED", "CONFIG_CHANGED", "CONFIG_DELETED"] {
        let filter = qaqpa_audit::AuditFilter {
            kind: Some(kind.into()),
            ..Default::default()
        };
        let page = qaqpa_audit::AuditStore::query(&*journal, &filter, None, 100)
            .await
            .expect("query");
        for rec in page.records {
            if let qaqpa_audit::EventKind::Config { what, .. } = rec.event.kind {
                config_events.push((rec.seq, kind, what));
            }
        }
    }
    config_events.sort();
    assert_eq!(config_events.len(), 2, "{config_events:#?}");
    for (_, kind, what) in &config_events {
        assert_eq!(*kind, "CONFIG_CREATED", "{config_events:#?}");
        assert!(what.starts_with("configuration loaded: "), "{what}");
    }
    assert_eq!(
        config_events[0].2, config_events[1].2,
        "the same routes and services, the same digest"
    );
}
