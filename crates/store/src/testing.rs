//! Test support shared with the gateway's tests: a self-deleting temporary directory and
//! [`TempPostgres`], a throwaway PostgreSQL server started from the installed binaries, which
//! works when the tests run as root (CI) by running the server as an unprivileged user. It must
//! never touch a server or a directory it did not create, and never outlive the test process: a
//! watchdog shell stops the server and deletes its files as soon as the test process goes away,
//! however it goes.
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::pg::describe_error;

/// Why a throwaway server could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TestingError {
    #[error("PostgreSQL binaries not found (looked at `pg_config --bindir`, /usr/lib/postgresql/*/bin and PATH); install the `postgresql` package")]
    NoBinaries,
    #[error("{0}")]
    Setup(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        uuid::Uuid::now_v7().simple()
    )
}

/// A directory under the system temp dir, deleted with everything in it on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> std::io::Result<TempDir> {
        let path = std::env::temp_dir().join(unique_name(prefix));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// How much of the server's log a failing test prints.
const LOG_TAIL_LINES: usize = 30;

fn log_tail(base: &Path, lines: usize) -> String {
    let log = std::fs::read_to_string(base.join("postgres.log")).unwrap_or_default();
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A PostgreSQL server of its own, on 127.0.0.1 and a free port, with `fsync=on`, trusting the
/// `postgres` role without a password. Dropping it stops the server and deletes its files.
pub struct TempPostgres {
    port: u16,
    base: PathBuf,
    bindir: PathBuf,
    watchdog: Mutex<Option<Child>>,
    next_db: AtomicU32,
}

/// Where the PostgreSQL server binaries are.
pub fn postgres_bindir() -> Result<PathBuf, TestingError> {
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_both(&dir) {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_both(d))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Ok(dir);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if has_both(&dir) {
            return Ok(dir);
        }
    }
    Err(TestingError::NoBinaries)
}

/// (uid, gid) of a local user, from /etc/passwd.
fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3 && f[0] == name {
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        } else {
            None
        }
    })
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The unprivileged user to run the server as when we are root: `postgres` (created by Debian's
/// package) or `qaqpa-pg`, created with `useradd` if neither exists.
fn server_user() -> Result<(u32, u32), TestingError> {
    if let Some(ids) = lookup_user("postgres").or_else(|| lookup_user("qaqpa-pg")) {
        return Ok(ids);
    }
    let status = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "qaqpa-pg",
        ])
        .status()?;
    if !status.success() {
        return Err(TestingError::Setup("useradd qaqpa-pg failed".into()));
    }
    lookup_user("qaqpa-pg")
        .ok_or_else(|| TestingError::Setup("user qaqpa-pg not found after useradd".into()))
}

impl TempPostgres {
    /// initdb + postgres in a fresh temporary directory; returns once the server accepts
    /// connections (polled, at most 60 s).
    pub fn start() -> Result<TempPostgres, TestingError> {
        let bindir = postgres_bindir()?;
        let ids = if running_as_root() {
            Some(server_user()?)
        } else {
            None
        };
        let base = std::env::temp_dir().join(unique_name("qaqpa-pg"));
        std::fs::create_dir_all(&base)?;
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(&base, Some(uid), Some(gid))?;
        }
        let as_user = |cmd: &mut Command| {
            if let Some((uid, gid)) = ids {
                cmd.uid(uid).gid(gid);
            }
            cmd.current_dir(&base)
                .env_remove("PGDATA")
                .env_remove("PGHOST")
                .env_remove("PGPORT");
        };
        let data = base.join("data");
        let mut initdb = Command::new(bindir.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ]);
        as_user(&mut initdb);
        let out = initdb.output()?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&base);
            return Err(TestingError::Setup(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        // The watchdog: starts the server, waits for its stdin to close (our end is dropped, or
        // this process dies), then stops the server and deletes the directory.
        let script = r#""$0" -D "$1" -k "$2" -p "$3" -c listen_addresses=127.0.0.1 -c fsync=on \
            -c max_connections=300 -c shared_buffers=128MB </dev/null >>"$2/postgres.log" 2>&1 &
            pid=$!
            cat >/dev/null
            kill -QUIT "$pid" 2>/dev/null
            wait "$pid"
            rm -rf "$2""#;
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(script)
            .arg(bindir.join("postgres"))
            .arg(&data)
            .arg(&base)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_user(&mut sh);
        let child = sh.spawn()?;
        let server = TempPostgres {
            port,
            base,
            bindir,
            watchdog: Mutex::new(Some(child)),
            next_db: AtomicU32::new(0),
        };
        server.wait_ready(Duration::from_secs(60))?;
        Ok(server)
    }

    /// One server for the whole test process, started on first use. A test of the process that
    /// fails afterwards also prints the last [`LOG_TAIL_LINES`] lines of the server's log, so
    /// a failure the server explains (out of connections, disk full, a crashed backend) says so.
    pub fn shared() -> Result<&'static TempPostgres, String> {
        static SHARED: OnceLock<Result<TempPostgres, String>> = OnceLock::new();
        let shared = SHARED.get_or_init(|| {
            let server = TempPostgres::start().map_err(|e| e.to_string())?;
            let base = server.base.clone();
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                previous(info);
                eprintln!(
                    "--- the end of the test PostgreSQL server's log ({}):\n{}",
                    base.join("postgres.log").display(),
                    log_tail(&base, LOG_TAIL_LINES)
                );
            }));
            Ok(server)
        });
        shared.as_ref().map_err(Clone::clone)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.base.join("postgres.log")).unwrap_or_default()
    }

    fn wait_ready(&self, limit: Duration) -> Result<(), TestingError> {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.log();
            if log.contains("ready to accept connections")
                && TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return Ok(());
            }
            let exited = self
                .watchdog
                .lock()
                .ok()
                .and_then(|mut w| w.as_mut().map(|c| c.try_wait()))
                .map(|r| matches!(r, Ok(Some(_))))
                .unwrap_or(false);
            if exited || Instant::now() > deadline {
                return Err(TestingError::Setup(format!(
                    "PostgreSQL did not start:\n{log}"
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Directory of the server binaries (for `pgbench`, `psql`).
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// Connection URL for database `db` as the superuser.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a fresh, empty database and returns its URL.
    pub async fn create_database(&self) -> Result<String, TestingError> {
        let name = format!(
            "qaqpa_test_{}",
            self.next_db.fetch_add(1, Ordering::Relaxed)
        );
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .map_err(|e| TestingError::Setup(format!("connect: {}", describe_error(&e))))?;
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| {
                TestingError::Setup(format!("CREATE DATABASE {name}: {}", describe_error(&e)))
            })?;
        drop(client);
        let _ = task.await;
        Ok(self.url(&name))
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if let Ok(mut w) = self.watchdog.lock() {
            if let Some(mut child) = w.take() {
                if let Some(mut stdin) = child.stdin.take() {
                    let _ = stdin.flush();
                }
                let _ = child.wait();
            }
        }
    }
}
