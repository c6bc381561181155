//! Durable inserts per second with concurrent callers, on SQLite (group commit) and PostgreSQL
//! (a throwaway server, `fsync=on`), with p50/p99 latency of `insert_message`, against baselines
//! measured in the same run: one row per transaction on SQLite with `synchronous=FULL`, and
//! `pgbench` inserting the same rows. Run: `cargo bench -p qaqpa-store --bench store_insert`.
//! Knobs: QAQPA_BENCH_MESSAGES (default 20000), QAQPA_BENCH_TASKS (default 64; SQLite also
//! runs with 4x as many), QAQPA_BENCH_ONLY=sqlite to skip PostgreSQL.
use std::sync::Arc;
use std::time::{Duration, Instant};

use qaqpa_store::conformance::new_message;
use qaqpa_store::testing::{TempDir, TempPostgres};
use qaqpa_store::{
    InsertOutcome, NewMessage, PgOptions, PgStore, SqliteOptions, SqliteStore, Store,
};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A message with a ~1 KiB document, as the gateway's accept benchmark posts.
fn kib_message() -> NewMessage {
    let mut m = new_message("edms-bench");
    m.document = serde_json::json!({"title": "Письмо", "body": "x".repeat(1000)});
    m.idempotency_key = Some(format!("bench-{}", m.id));
    m
}

struct Figures {
    label: String,
    count: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Figures {
    fn print(&mut self) {
        self.latencies.sort();
        let pick = |q: f64| {
            let i = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
            self.latencies.get(i).copied().unwrap_or_default()
        };
        let rate = self.count as f64 / self.elapsed.as_secs_f64();
        println!(
            "| {} | {} | {:.1} | {:.0} | {:.2} | {:.2} |",
            self.label,
            self.count,
            self.elapsed.as_secs_f64(),
            rate,
            pick(0.50).as_secs_f64() * 1000.0,
            pick(0.99).as_secs_f64() * 1000.0
        );
    }
}

async fn concurrent_inserts(
    label: &str,
    store: Arc<dyn Store>,
    total: usize,
    tasks: usize,
) -> Figures {
    let per_task = total / tasks;
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let m = kib_message();
                let t = Instant::now();
                let outcome = store.insert_message(m).await;
                lat.push(t.elapsed());
                assert!(
                    matches!(outcome, Ok(InsertOutcome::Inserted)),
                    "insert failed: {outcome:?}"
                );
            }
            lat
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for h in handles {
        latencies.extend(h.await.expect("task"));
    }
    Figures {
        label: label.into(),
        count: per_task * tasks,
        elapsed: started.elapsed(),
        latencies,
    }
}

/// Baseline: the same row, one transaction (one fsync) per insert, one connection.
fn sqlite_one_per_transaction(dir: &std::path::Path, count: usize) -> Figures {
    drop(SqliteStore::open(dir, SqliteOptions::default()).expect("schema"));
    let conn = rusqlite::Connection::open(dir.join("qaqpa.db")).expect("open");
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
        .expect("pragmas");
    let mut latencies = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        let m = kib_message();
        let t = Instant::now();
        conn.execute(
            "INSERT INTO messages (id, client, kind, to_addr, route, status, document, attachments, \
             signatures, idempotency_key, request_hash, transaction_id, created_at, updated_at, \
             next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, '[]', '[]', ?7, ?8, ?9, 0, 0, 0)",
            rusqlite::params![
                m.id.to_string(),
                m.client.0,
                m.kind,
                m.to,
                m.route,
                m.document.to_string(),
                m.idempotency_key,
                m.request_hash,
                m.transaction_id
            ],
        )
        .expect("insert");
        latencies.push(t.elapsed());
    }
    Figures {
        label: "SQLite baseline: 1 row per transaction, 1 connection".into(),
        count,
        elapsed: started.elapsed(),
        latencies,
    }
}

/// Baseline: pgbench inserting a 1 KiB row per transaction from `clients` connections.
fn pgbench(server: &TempPostgres, db_url: &str, clients: usize, seconds: u64) -> Option<String> {
    let dbname = db_url.rsplit('/').next()?.to_owned();
    let script = std::env::temp_dir().join(format!("qaqpa-pgbench-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "INSERT INTO bench_rows (id, client, document) VALUES (gen_random_uuid(), 'edms-bench', repeat('x', 1024));\n",
    )
    .ok()?;
    let psql = server.bindir().join("psql");
    let port = server.port().to_string();
    let ok = std::process::Command::new(psql)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            &dbname,
            "-q",
            "-c",
        ])
        .arg("CREATE TABLE bench_rows (id uuid PRIMARY KEY, client text, document text)")
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    let out = std::process::Command::new(server.bindir().join("pgbench"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(&dbname)
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let keep: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("tps")
                || l.starts_with("latency")
                || l.contains("transactions actually processed")
        })
        .collect();
    Some(keep.join("; "))
}

fn main() {
    let total = env_usize("QAQPA_BENCH_MESSAGES", 20_000);
    let tasks = env_usize("QAQPA_BENCH_TASKS", 64).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "machine: {} cores; {} messages of ~1 KiB per run, {} concurrent callers\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        total,
        tasks
    );
    println!("| run | inserts | seconds | inserts/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");

    let base_dir = TempDir::new("qaqpa-bench-base").expect("temp dir");
    sqlite_one_per_transaction(base_dir.path(), (total / 10).max(100)).print();

    let dir = TempDir::new("qaqpa-bench-sqlite").expect("temp dir");
    let sqlite: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).expect("open"));
    for t in [tasks, tasks * 4] {
        rt.block_on(concurrent_inserts(
            &format!("SqliteStore group commit, {t} tasks"),
            sqlite.clone(),
            total,
            t,
        ))
        .print();
    }
    let dir = TempDir::new("qaqpa-bench-sqlite-pipelined").expect("temp dir");
    let opts = SqliteOptions {
        pipelined_sync: true,
        ..SqliteOptions::default()
    };
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path(), opts).expect("open"));
    for t in [tasks, tasks * 4] {
        rt.block_on(concurrent_inserts(
            &format!("SqliteStore group commit + pipelined WAL fsync, {t} tasks"),
            sqlite.clone(),
            total,
            t,
        ))
        .print();
    }
    if std::env::var("QAQPA_BENCH_ONLY").as_deref() == Ok("sqlite") {
        return;
    }

    let server = match TempPostgres::start() {
        Ok(s) => s,
        Err(e) => {
            println!("\nPostgreSQL runs skipped: {e}");
            return;
        }
    };
    for (pool, group) in [(16usize, 1usize), (64, 1), (16, 256)] {
        let url = rt.block_on(server.create_database()).expect("database");
        let pg: Arc<dyn Store> = Arc::new(
            rt.block_on(PgStore::connect(
                &url,
                PgOptions {
                    max_connections: pool,
                    insert_group: group,
                    ..PgOptions::default()
                },
            ))
            .expect("connect"),
        );
        let how = if group > 1 {
            format!("grouped inserts (up to {group})")
        } else {
            "one transaction per insert".to_owned()
        };
        rt.block_on(concurrent_inserts(
            &format!("PgStore, pool {pool}, {how}, {tasks} tasks"),
            pg,
            total,
            tasks,
        ))
        .print();
    }
    let url = rt.block_on(server.create_database()).expect("database");
    match pgbench(&server, &url, tasks, 10) {
        Some(line) => println!(
            "\npgbench baseline ({tasks} clients, 10 s, 1 KiB row insert per transaction): {line}"
        ),
        None => println!("\npgbench baseline could not run"),
    }
}
