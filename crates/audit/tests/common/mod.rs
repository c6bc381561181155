//! Test support: a real rsyslogd of the test's own (UDP, TCP and TLS inputs on free ports,
//! each writing the raw RFC 5424 messages to its own file), throwaway TLS certificates made with
//! the `openssl` CLI, a sample of every event kind, and checks that a received line carries
//! every field of its event.
#![allow(dead_code)]

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qaqpa_audit::syslog::{fields, parse_msg, SD_ID};
use qaqpa_audit::{
    AuditEvent, ChangeOp, Direction, Exchange, ExchangeResult, LifecycleStage, ObjectKind,
    RefusalReason,
};
#[allow(unused_imports)]
pub use qaqpa_store::testing::TempDir;
use time::OffsetDateTime;

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free TCP port")
        .port()
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free UDP port")
        .port()
}

/// CA and server certificate (for `localhost` and 127.0.0.1) in `dir`.
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn make_certs(dir: &Path) -> Certs {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=qaqpa audit test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext file");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    Certs {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}

/// Ports of the inputs an rsyslogd should open.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ports {
    pub udp: Option<u16>,
    pub tcp: Option<u16>,
    pub tls: Option<u16>,
}

/// A running rsyslogd. Each input writes `%rawmsg%` lines to `<dir>/<udp|tcp|tls>.log`.
/// Dropping it kills the daemon; a watchdog shell kills it too if the test process dies.
pub struct Rsyslog {
    dir: PathBuf,
    ports: Ports,
    watchdog: Option<Child>,
    pidfile: PathBuf,
}

impl Rsyslog {
    pub fn start(dir: &Path, ports: Ports, certs: Option<&Certs>) -> Rsyslog {
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let work = dir.join(format!("work-{n}"));
        std::fs::create_dir_all(&work).expect("work dir");
        let mut conf = String::new();
        let mut global = format!(
            "global(workDirectory=\"{}\" maxMessageSize=\"64k\"",
            work.display()
        );
        if let Some(c) = certs {
            global.push_str(&format!(
                " DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\"",
                c.ca.display(),
                c.cert.display(),
                c.key.display()
            ));
        }
        global.push_str(")\n");
        conf.push_str(&global);
        conf.push_str("template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n");
        for name in ["udp", "tcp", "tls"] {
            conf.push_str(&format!(
                "ruleset(name=\"{name}\") {{ action(type=\"omfile\" file=\"{}\" template=\"raw\") }}\n",
                dir.join(format!("{name}.log")).display()
            ));
        }
        if let Some(p) = ports.udp {
            conf.push_str(&format!(
                "module(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{p}\" ruleset=\"udp\")\n"
            ));
        }
        if ports.tcp.is_some() || ports.tls.is_some() {
            conf.push_str("module(load=\"imtcp\" maxSessions=\"200\")\n");
        }
        if let Some(p) = ports.tcp {
            conf.push_str(&format!(
                "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{p}\" ruleset=\"tcp\")\n"
            ));
        }
        if let Some(p) = ports.tls {
            assert!(certs.is_some(), "TLS input needs certificates");
            conf.push_str(&format!(
                "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{p}\" ruleset=\"tls\" name=\"tls\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")\n"
            ));
        }
        let conf_path = work.join("rsyslog.conf");
        std::fs::write(&conf_path, conf).expect("write rsyslog.conf");
        let pidfile = work.join("rsyslogd.pid");
        let script = r#""$0" -n -f "$1" -i "$2" >"$3" 2>&1 </dev/null &
            pid=$!
            cat >/dev/null
            kill -9 "$pid" 2>/dev/null
            wait "$pid""#;
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("/usr/sbin/rsyslogd")
            .arg(&conf_path)
            .arg(&pidfile)
            .arg(work.join("rsyslogd.out"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rsyslogd (install the rsyslog and rsyslog-gnutls packages)");
        let r = Rsyslog {
            dir: dir.to_owned(),
            ports,
            watchdog: Some(child),
            pidfile,
        };
        r.wait_ready(&work);
        r
    }

    fn wait_ready(&self, work: &Path) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pid_ok = std::fs::read_to_string(&self.pidfile)
                .map(|s| !s.trim().is_empty())
                .unwrap_or(false);
            let tcp_ok = [self.ports.tcp, self.ports.tls]
                .into_iter()
                .flatten()
                .all(|p| TcpStream::connect(("127.0.0.1", p)).is_ok());
            if pid_ok && tcp_ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not start: {}",
                std::fs::read_to_string(work.join("rsyslogd.out")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the daemon at once (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.watchdog.take() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }

    /// Lines received so far on an input (`udp`, `tcp` or `tls`).
    /// The complete lines written so far: a last line without its newline is still being
    /// written by rsyslog and is left for the next read.
    pub fn lines(dir: &Path, input: &str) -> Vec<String> {
        let text = std::fs::read(dir.join(format!("{input}.log"))).unwrap_or_default();
        let complete = text
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(&text[..0], |end| &text[..=end]);
        String::from_utf8_lossy(complete)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `dir/<input>.log` until `done` holds for its lines (at most `limit`).
pub async fn wait_for_lines(
    dir: &Path,
    input: &str,
    limit: Duration,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let lines = Rsyslog::lines(dir, input);
        if done(&lines) {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {input} lines; have {}",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The gateway's two busiest events, `n` in all, in pairs for one message each: its accept
/// (`ACCEPTED`, by the API) and its delivery (`EXCHANGE`, by the engine), shaped as the
/// gateway makes them (benches).
pub fn accept_and_delivery_events(n: usize) -> Vec<AuditEvent> {
    (0..n / 2)
        .flat_map(|_| {
            let id = uuid::Uuid::now_v7().to_string();
            let now = OffsetDateTime::now_utc();
            [
                AuditEvent::lifecycle(
                    "qaqpa-api",
                    LifecycleStage::Accepted,
                    &id,
                    Some("bench"),
                    None,
                )
                .account("d16bcb9912aca13b")
                .transaction(&id),
                AuditEvent::exchange(
                    "qaqpa-engine",
                    Exchange {
                        direction: Direction::Outbound,
                        target: "bench".into(),
                        service_id: Some("http.post".into()),
                        message_id: Some(id.clone()),
                        request_out: Some(now - time::Duration::milliseconds(3)),
                        response_in: Some(now),
                        request_in: None,
                        response_out: None,
                        request_bytes: None,
                        response_bytes: None,
                        result: ExchangeResult::Http(200),
                    },
                )
                .transaction(&id),
            ]
        })
        .collect()
}

/// One event of every kind, with text that needs quoting and escaping.
pub fn sample_events() -> Vec<AuditEvent> {
    let t0 = OffsetDateTime::now_utc();
    let ip = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
    let exchange = Exchange {
        direction: Direction::Outbound,
        target: "esedo".into(),
        service_id: Some("ESEDO_DOC_SEND".into()),
        message_id: Some("0193a5b0-0000-7000-8000-000000000001".into()),
        request_out: Some(t0),
        response_in: Some(t0 + time::Duration::milliseconds(250)),
        request_in: None,
        response_out: None,
        request_bytes: Some(2048),
        response_bytes: Some(512),
        result: ExchangeResult::Shep("SCSE002".into()),
    };
    let inbound = Exchange {
        direction: Direction::Inbound,
        target: "shep-push".into(),
        service_id: None,
        message_id: None,
        request_out: None,
        response_in: None,
        request_in: Some(t0),
        response_out: Some(t0 + time::Duration::milliseconds(12)),
        request_bytes: Some(100),
        response_bytes: Some(10),
        result: ExchangeResult::Http(200),
    };
    let mut v = vec![
        AuditEvent::login("qaqpa-api", "admin"),
        AuditEvent::logout("qaqpa-api", "admin"),
        AuditEvent::auth_ok("qaqpa-api", "key-01").client_ip(ip),
        AuditEvent::auth_fail("qaqpa-api", Some("key-02"), "secret does not match").client_ip(ip),
        AuditEvent::account_change("qaqpa-api", ChangeOp::Created, "key-03", Some("admin")),
        AuditEvent::account_change("qaqpa-api", ChangeOp::Deleted, "key-03", Some("admin")),
        AuditEvent::config_change(
            "qaqpa-gateway",
            ChangeOp::Changed,
            "routes reloaded: 4 routes",
        ),
        AuditEvent::refused(
            "qaqpa-api",
            RefusalReason::Validation,
            "POST /v1/messages",
            Some("field \"to\" = [] is empty; path C:\\tmp\\x]"),
        ),
        AuditEvent::refused(
            "qaqpa-api",
            RefusalReason::RateLimited,
            "POST /v1/messages",
            None,
        ),
        AuditEvent::refused(
            "qaqpa-api",
            RefusalReason::Unauthorized,
            "GET /v1/admin/audit",
            None,
        ),
        AuditEvent::object_access("qaqpa-api", ObjectKind::Attachment, "att-7"),
        AuditEvent::exchange("qaqpa-engine", exchange).transaction("tx-42"),
        AuditEvent::exchange("adapter/shep", inbound).transaction("tx-43"),
        AuditEvent::signature(
            "qaqpa-engine",
            false,
            Some("IIN=870101300123, O=Test LLP, BIN=123456789012"),
            Some("certificate revoked"),
            Some("m-1"),
        ),
        AuditEvent::lifecycle(
            "qaqpa-engine",
            LifecycleStage::DeadLettered,
            "m-1",
            Some("esedo"),
            Some("5 attempts\nlast: timeout"),
        )
        .transaction("tx-42"),
        AuditEvent::lifecycle("qaqpa-api", LifecycleStage::Requeued, "m-1", None, None)
            .account("ops-key")
            .transaction("tx-42"),
        AuditEvent::audit_dropped("qaqpa", 3, "tcp://x:1"),
        AuditEvent::unclean_stop("qaqpa-gateway", Some(4242), Some(t0)),
        AuditEvent::unclean_stop("qaqpa-gateway", None, None),
    ];
    v.push(
        qaqpa_audit::expiry_warning(
            "CN=Қапқа gateway, SERIALNUMBER=BIN123456789012",
            "4f:00:01",
            t0 + time::Duration::days(10),
            t0,
        )
        .expect("expires within 30 days"),
    );
    v.push(
        AuditEvent::object_access("qaqpa-api", ObjectKind::AuditJournal, "query")
            .account("admin")
            .client_ip(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST))
            .operation(t0, t0 + time::Duration::milliseconds(3))
            .transaction("tx \"quoted\" = yes \\ back")
            .level(qaqpa_audit::Level::Notice),
    );
    v
}

/// The event as the auditor passes it on (texts bounded, IINs masked).
pub fn as_recorded(e: &AuditEvent) -> AuditEvent {
    let mut e = e.clone();
    e.limit_texts();
    e.mask_iins();
    e
}

/// SD values as written: a line break becomes the two characters `\n`.
fn sd_expected(v: &str) -> String {
    v.replace('\n', "\\n").replace('\r', "\\r")
}

/// Checks that a received line is the RFC 5424 form of `event`: header, every field in SD
/// and in MSG, nothing else.
pub fn assert_line_matches(line: &str, event: &AuditEvent, hostname: &str, app: &str) {
    let m = syslog_rfc5424::parse_message(line)
        .unwrap_or_else(|e| panic!("not RFC 5424 ({e}): {line}"));
    assert_eq!(m.version, 1);
    assert_eq!(m.severity as u8, event.level.severity(), "{line}");
    assert_eq!(m.facility as u8, 13, "facility log audit: {line}");
    assert_eq!(m.hostname.as_deref(), Some(hostname));
    assert_eq!(m.appname.as_deref(), Some(app));
    assert_eq!(m.msgid.as_deref(), Some(event.kind.name()));
    assert_eq!(
        m.timestamp,
        Some(event.time.unix_timestamp()),
        "timestamp: {line}"
    );
    assert_eq!(
        m.timestamp_nanos.map(|n| n / 1000),
        Some(event.time.nanosecond() / 1000)
    );
    let expected = fields(event);
    let sd = m.sd.find_sdid(SD_ID).expect("our SD element");
    assert_eq!(sd.len(), expected.len(), "SD params: {line}");
    for (k, v) in &expected {
        assert_eq!(
            sd.get(*k).map(String::as_str),
            Some(sd_expected(v).as_str()),
            "SD {k}: {line}"
        );
    }
    assert!(m.msg.starts_with('\u{feff}'), "MSG starts with the BOM");
    let parsed = parse_msg(&m.msg).unwrap_or_else(|| panic!("MSG not key=value: {line}"));
    let want: Vec<(String, String)> = expected
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.to_string()))
        .collect();
    assert_eq!(parsed, want, "MSG fields: {line}");
}

/// The `id` SD param of a received line.
pub fn line_id(line: &str) -> Option<String> {
    let m = syslog_rfc5424::parse_message(line).ok()?;
    m.sd.find_tuple(SD_ID, "id").cloned()
}

pub fn write_file(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::File::create(path).expect("create");
    f.write_all(bytes).expect("write");
}
