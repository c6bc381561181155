//! The audit journal of the real `qaqpa` binary: every step of a message's path is journalled
//! and streamed as RFC 5424 over TLS to a real rsyslogd under one transaction id; refused and
//! failed requests are journalled; only admins and auditors read the journal; `qaqpa audit
//! verify` finds a changed record; a BMG-like person look-up through `/v1/calls` is journalled
//! as an exchange by its metadata; and no API key secret, keystore password, document content
//! or personal data from the look-up reaches the journal, the syslog stream or the logs of the
//! run.
mod common;
// The audit crate's rsyslogd harness (a daemon of the test's own, TLS certificates by openssl).
#[path = "../crates/audit/tests/common/mod.rs"]
mod rsyslog;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::HookSink;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const SECRET: &str = "audit test master secret, long enough!";
const KEYSTORE_PASSWORD: &str = "Kilt-7vQ-password-of-the-keystore";
const DOC_MARKER: &str = "DOC-CONTENT-e1f0c4b2-never-in-the-journal";
/// What a BMG-like look-up answers about a person: personal data, never to be kept.
const PERSON_IIN: &str = "880101300123";
const PERSON_NAME: &str = "Жаксыбекова Айгерим Маратовна";
const PERSON_ADDRESS: &str = "Астана, ул. Кенесары 40, кв. 17";

fn qaqpa() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_qaqpa"));
    c.env("QAQPA_WEBHOOK_SECRET", SECRET)
        .env("QAQPA_AUDIT_TEST_KS_PASSWORD", KEYSTORE_PASSWORD);
    c
}

fn create_key(config: &Path, client: &str, role: &str) -> String {
    let out = qaqpa()
        .args([
            "keys", "create", "--client", client, "--role", role, "--config",
        ])
        .arg(config)
        .output()
        .expect("keys create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("token:").map(|t| t.trim().to_string()))
        .expect("token printed")
}

/// The gateway process, killed if the test fails before stopping it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes `routes.toml` and a `qaqpa.toml` listening on `port` with the SQLite store in
/// `data/`, followed by `rest` (more configuration tables); returns the configuration's path.
fn write_sqlite_gateway(dir: &Path, port: u16, routes: &str, rest: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("routes.toml"), routes).expect("routes");
    let config = dir.join("qaqpa.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nroutes = \"routes.toml\"\n[store]\nkind = \"sqlite\"\ndata_dir = \"data\"\n{rest}"
        ),
    )
    .expect("config");
    config
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Reads the journal as `admin` with `query` until `done` holds for the page (at most 30 s).
async fn journal_until(
    http: &reqwest::Client,
    url: &str,
    admin: &str,
    query: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let page: Value = http
            .get(format!("{url}/v1/admin/audit?{query}"))
            .bearer_auth(admin)
            .send()
            .await
            .expect("audit")
            .json()
            .await
            .expect("json");
        if done(&page) {
            return page;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the journal never showed what {query} looks for: {page:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A journal block's text as stored: a zstd frame (decoded here with the `zstd` crate, not
/// the journal's own code), or plain text in blocks from before compression.
fn block_text(stored: rusqlite::types::Value) -> String {
    match stored {
        rusqlite::types::Value::Blob(frame) => {
            String::from_utf8(zstd::decode_all(&frame[..]).expect("a zstd frame")).expect("UTF-8")
        }
        rusqlite::types::Value::Text(text) => text,
        other => panic!("a block's records are {other:?}"),
    }
}

/// Runs `qaqpa <args> --config <config>` as the operating-system user `user`; returns whether
/// it succeeded, its stdout and its stderr.
fn qaqpa_as(user: &str, config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = qaqpa()
        .args(args)
        .arg("--config")
        .arg(config)
        .env("USER", user)
        .env_remove("SUDO_USER")
        .output()
        .expect("qaqpa");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The text of every journal block, oldest first.
fn journal_text(journal: &rusqlite::Connection) -> String {
    journal
        .prepare("SELECT records FROM audit_block ORDER BY first_seq")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .map(|v| block_text(v.expect("row")))
        .collect()
}

/// From now on the journal refuses every append ([`accept_appends`] undoes it).
fn refuse_appends(journal: &rusqlite::Connection) {
    journal
        .execute_batch(
            "CREATE TRIGGER test_refuses_appends BEFORE INSERT ON audit_block \
             BEGIN SELECT RAISE(ABORT, 'the test refuses appends'); END;",
        )
        .expect("trigger");
}

fn accept_appends(journal: &rusqlite::Connection) {
    journal
        .execute_batch("DROP TRIGGER test_refuses_appends;")
        .expect("drop trigger");
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_path_is_journalled_and_streamed_under_one_transaction_without_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let emulator = qaqpa_adapter_http::Emulator::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator");
    let hooks = HookSink::start().await;
    // A BMG-like person service behind the ШЭП emulator (SyncChannel).
    let bmg = qaqpa_shep::emulator::ShepEmulator::builder()
        .service("BMG_PERSON_INFO", |r: &qaqpa_shep::SyncRequest| {
            let asked = r.data.as_ref().map(|d| d.as_text().to_owned()).unwrap_or_default();
            qaqpa_shep::emulator::ServiceAnswer::Data(asked.contains(PERSON_IIN).then(|| {
                qaqpa_shep::MessageData::text(format!(
                    "<Person><IIN>{PERSON_IIN}</IIN><FIO>{PERSON_NAME}</FIO><Address>{PERSON_ADDRESS}</Address></Person>"
                ))
            }))
        })
        .start()
        .await
        .expect("ШЭП emulator");
    std::fs::create_dir_all(dir.path().join("certs")).expect("certs dir");
    let certs = rsyslog::make_certs(&dir.path().join("certs"));
    let syslog_port = rsyslog::free_tcp_port();
    let syslog_dir = dir.path().join("rsyslog");
    std::fs::create_dir_all(&syslog_dir).expect("rsyslog dir");
    let _receiver = rsyslog::Rsyslog::start(
        &syslog_dir,
        rsyslog::Ports {
            tls: Some(syslog_port),
            ..Default::default()
        },
        Some(&certs),
    );
    let received = || rsyslog::Rsyslog::lines(&syslog_dir, "tls");
    // A keystore the gateway opens at start-up with a password from the environment.
    let pki_dir = dir.path().join("pki");
    qaqpa_pki::testpki::TestPki::generate(&pki_dir).expect("test PKI");
    let ks = qaqpa_pki::Keystore::from_pkcs12(
        &std::fs::read(pki_dir.join("rsa_head_valid.p12")).expect("p12"),
        qaqpa_pki::testpki::TEST_PASSWORD,
    )
    .expect("opens");
    std::fs::write(
        dir.path().join("signing.p12"),
        ks.to_pkcs12(KEYSTORE_PASSWORD).expect("p12"),
    )
    .expect("write");
    let port = free_port();
    let routes = format!(
        "[[route]]\nname = \"echo\"\nadapter = \"http\"\nkinds = [\"http.post\"]\n[route.settings]\nurl = \"{}/deliver\"\n\
         [[service]]\nname = \"bmg-person\"\nadapter = \"shep\"\ntimeout_ms = 10000\n[service.settings]\n\
         endpoint = \"{}\"\nservice_id = \"BMG_PERSON_INFO\"\nsender_id = \"qaqpa\"\ntimeout_secs = 10\nrequire_signed_pushes = false\n",
        emulator.url(),
        bmg.sync_url()
    );
    let config = write_sqlite_gateway(
        dir.path(),
        port,
        &routes,
        &format!(
            "[engine]\npoll_ms = 50\n[webhooks]\npoll_ms = 50\n[log]\nfilter = \"debug\"\n\
             [signing]\nkeystore = \"signing.p12\"\npassword_env = \"QAQPA_AUDIT_TEST_KS_PASSWORD\"\n\
             [[audit.syslog]]\nurl = \"tls://localhost:{syslog_port}\"\nca_file = \"{}\"\n",
            certs.ca.display()
        ),
    );
    let client = create_key(&config, "edms-1", "client");
    let admin = create_key(&config, "ops", "admin");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut gateway = serve_until_ready(&config, &url, &dir.path().join("gateway.log")).await;

    // The path: accepted → exchange with the target → delivered → webhook delivered.
    let accepted: Value = http
        .post(format!("{url}/v1/messages"))
        .bearer_auth(&client)
        .json(
            &json!({"kind": "http.post", "to": "echo-1", "document": {"text": DOC_MARKER},
                      "callback_url": hooks.url()}),
        )
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("json");
    let id = accepted["id"].as_str().expect("id").to_string();
    hooks.wait_for(1, Duration::from_secs(30)).await;
    // A person look-up: the answer reaches the caller, and only its metadata is journalled.
    let person: Value = http
        .post(format!("{url}/v1/calls/bmg-person"))
        .bearer_auth(&client)
        .json(&json!({"data": format!("<IIN>{PERSON_IIN}</IIN>")}))
        .send()
        .await
        .expect("call")
        .json()
        .await
        .expect("json");
    assert_eq!(person["status"]["code"], "SCSS001", "{person}");
    assert!(
        person["data"]
            .as_str()
            .is_some_and(|d| d.contains(PERSON_NAME)),
        "{person}"
    );
    // Refusals: a wrong key, a client reading the journal, an invalid message.
    let bad = http
        .get(format!("{url}/v1/messages"))
        .bearer_auth("qk_0123456789abcdef.not-the-secret")
        .send()
        .await
        .expect("request");
    assert_eq!(bad.status(), 401);
    let forbidden = http
        .get(format!("{url}/v1/admin/audit"))
        .bearer_auth(&client)
        .send()
        .await
        .expect("request");
    assert_eq!(forbidden.status(), 403);
    let invalid = http
        .post(format!("{url}/v1/messages"))
        .bearer_auth(&client)
        .json(&json!({"kind": "nope", "to": "x"}))
        .send()
        .await
        .expect("request");
    assert_eq!(invalid.status(), 422);

    // The journal, read by an admin, shows the whole path under the message's transaction id.
    let wanted = ["MSG_ACCEPTED", "EXCHANGE", "WEBHOOK_OK"];
    let path = journal_until(
        &http,
        &url,
        &admin,
        &format!("transaction_id={id}&limit=50"),
        |page| {
            let names: Vec<&str> = page["records"]
                .as_array()
                .map(|r| r.iter().filter_map(|x| x["name"].as_str()).collect())
                .unwrap_or_default();
            wanted.iter().all(|k| names.contains(k))
        },
    )
    .await;
    assert!(path.to_string().contains(&id));
    // The accept names who asked, from where, and when the message was created and committed.
    let accept = path["records"]
        .as_array()
        .and_then(|r| r.iter().find(|x| x["name"] == "MSG_ACCEPTED"))
        .map(|x| &x["event"])
        .expect("MSG_ACCEPTED in the path");
    assert_eq!(accept["client_ip"], "127.0.0.1", "{accept:#}");
    assert!(
        accept["account"]
            .as_str()
            .is_some_and(|a| client.contains(a)),
        "{accept:#}"
    );
    let op_time = |field: &str| {
        accept[field]
            .as_str()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .unwrap_or_else(|| panic!("{field} is not an RFC 3339 time: {accept:#}"))
    };
    assert!(op_time("op_start") <= op_time("op_end"), "{accept:#}");
    // The delivery's exchange with the target has its sizes: at least the document handed
    // over, and the answer handed back.
    let delivery = path["records"]
        .as_array()
        .and_then(|r| {
            r.iter()
                .find(|x| x["name"] == "EXCHANGE" && x["event"]["kind"]["result"]["http"] == 200)
        })
        .map(|x| &x["event"]["kind"])
        .unwrap_or_else(|| panic!("no delivering EXCHANGE in the path: {path:#}"));
    let document_bytes = json!({"text": DOC_MARKER}).to_string().len() as u64;
    assert!(
        delivery["request_bytes"]
            .as_u64()
            .is_some_and(|n| n >= document_bytes),
        "{delivery:#}"
    );
    assert!(
        delivery["response_bytes"].as_u64().is_some_and(|n| n > 0),
        "{delivery:#}"
    );
    assert_eq!(delivery["message_id"], id.as_str(), "{delivery:#}");
    let calls = journal_until(
        &http,
        &url,
        &admin,
        "kind=EXCHANGE&target=bmg-person",
        |page| page["records"].as_array().is_some_and(|r| !r.is_empty()),
    )
    .await;
    let call = &calls["records"][0]["event"];
    assert_eq!(
        call["kind"]["service_id"], "BMG_PERSON_INFO",
        "the ШЭП serviceId: {calls:#}"
    );
    assert_eq!(call["kind"]["result"]["shep"], "SCSS001", "{calls:#}");
    // Its sizes are those of the signed envelopes the ШЭП emulator received and answered.
    let wire = bmg.wire_sizes();
    assert_eq!(wire.len(), 1, "{wire:?}");
    assert_eq!(
        call["kind"]["request_bytes"].as_u64(),
        Some(wire[0].request_bytes),
        "{calls:#}"
    );
    assert_eq!(
        call["kind"]["response_bytes"].as_u64(),
        wire[0].response_bytes,
        "{calls:#}"
    );
    // The call's ШЭП messageId, from the adapter's answer (only the id, never the answer).
    assert!(
        call["kind"]["message_id"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{calls:#}"
    );

    // The same events arrive at the SIEM as RFC 5424 with the same transaction id.
    let start = Instant::now();
    loop {
        let lines = received();
        let parsed: Vec<_> = lines
            .iter()
            .map(|l| syslog_rfc5424::parse_message(l).expect("RFC 5424"))
            .collect();
        let on_path: Vec<&str> = parsed
            .iter()
            .filter(|m| {
                m.sd.find_tuple("qaqpa@32473", "transaction_id")
                    .is_some_and(|t| t.as_str() == id)
            })
            .filter_map(|m| m.msgid.as_deref())
            .collect();
        let refusals: Vec<&str> = parsed.iter().filter_map(|m| m.msgid.as_deref()).collect();
        if wanted.iter().all(|k| on_path.contains(k))
            && [
                "AUTH_FAIL",
                "ACCESS_DENIED",
                "REJECTED",
                "KEY_CREATED",
                "OBJECT_ACCESS",
            ]
            .iter()
            .all(|k| refusals.contains(k))
        {
            let accepted = parsed
                .iter()
                .find(|m| m.msgid.as_deref() == Some("MSG_ACCEPTED"))
                .expect("MSG_ACCEPTED over syslog");
            for (field, nonempty) in [("client_ip", "127.0.0.1"), ("op_start", ""), ("op_end", "")]
            {
                let value = accepted
                    .sd
                    .find_tuple("qaqpa@32473", field)
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default();
                assert!(
                    !value.is_empty() && value.contains(nonempty),
                    "{field}={value:?} in {accepted:?}"
                );
            }
            for m in &parsed {
                for field in ["source", "level", "category", "description"] {
                    assert!(
                        m.sd.find_tuple("qaqpa@32473", field).is_some(),
                        "{field} missing: {m:?}"
                    );
                }
            }
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "syslog got {on_path:?} on the path and {refusals:?} overall"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Operators see the journal and the stream in /metrics.
    let metrics = http
        .get(format!("{url}/metrics"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{prefix} not in /metrics:\n{metrics}"))
    };
    assert!(value("qaqpa_audit_journal_events_total{outcome=\"appended\"}") > 0.0);
    assert_eq!(
        value("qaqpa_audit_journal_events_total{outcome=\"dropped\"}"),
        0.0
    );
    let sink = format!("tls://localhost:{syslog_port}");
    assert!(
        value(&format!(
            "qaqpa_audit_syslog_lines_total{{target=\"{sink}\",outcome=\"sent\"}}"
        )) > 0.0
    );
    assert_eq!(
        value(&format!(
            "qaqpa_audit_syslog_lines_total{{target=\"{sink}\",outcome=\"dropped\"}}"
        )),
        0.0
    );
    assert_eq!(
        value(&format!(
            "qaqpa_audit_syslog_connected{{target=\"{sink}\"}}"
        )),
        1.0
    );

    // Stop gracefully (the journal is flushed), then check the chain and tamper with it.
    let _ = Command::new("kill")
        .args(["-TERM", &gateway.0.id().to_string()])
        .status();
    let _ = gateway.0.wait();
    let verify = qaqpa()
        .args(["audit", "verify", "--config"])
        .arg(&config)
        .output()
        .expect("verify");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    // No secret, password or document content anywhere the run wrote (the document lives in
    // the message store and its blobs by design, and nowhere else).
    let syslog_text = received().join("\n");
    let mut haystacks: Vec<(String, Vec<u8>)> =
        vec![("syslog stream".into(), syslog_text.into_bytes())];
    for f in files(dir.path()) {
        let name = f.display().to_string();
        if name.contains("/pki/") || name.contains("/certs/") || name.ends_with("signing.p12") {
            continue;
        }
        haystacks.push((name, std::fs::read(&f).expect("read")));
    }
    // The journal's blocks are compressed, so the file itself shows little: their text too.
    let journal =
        rusqlite::Connection::open(dir.path().join("data").join("audit.db")).expect("open journal");
    let blocks: Vec<String> = journal
        .prepare("SELECT records FROM audit_block")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .map(|v| block_text(v.expect("row")))
        .collect();
    assert!(!blocks.is_empty(), "the journal has blocks");
    haystacks.push((
        "audit.db blocks, decompressed".into(),
        blocks.concat().into_bytes(),
    ));
    drop(journal);
    let secret_of = |t: &str| {
        t.split_once('.')
            .map(|(_, s)| s.to_string())
            .expect("secret")
    };
    for (name, bytes) in &haystacks {
        let text = String::from_utf8_lossy(bytes);
        for s in [
            secret_of(&client),
            secret_of(&admin),
            KEYSTORE_PASSWORD.to_string(),
        ] {
            assert!(!text.contains(&s), "a secret leaked into {name}");
        }
        for p in [PERSON_IIN, PERSON_NAME, PERSON_ADDRESS] {
            assert!(!text.contains(p), "personal data ({p}) leaked into {name}");
        }
        let holds_documents = name.contains("/data/") && !name.contains("audit");
        if !holds_documents {
            assert!(
                !text.contains(DOC_MARKER),
                "document content leaked into {name}"
            );
        }
    }
    assert!(
        haystacks.iter().any(|(n, _)| n.ends_with("audit.db")),
        "the journal file was not found among {:?}",
        haystacks.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );

    // A changed record is found, with its sequence number.
    let db = dir.path().join("data").join("audit.db");
    let conn = rusqlite::Connection::open(&db).expect("open journal");
    conn.execute_batch("DROP TRIGGER audit_block_no_update;")
        .expect("drop trigger");
    let (first, records): (i64, String) = conn
        .query_row(
            "SELECT first_seq, records FROM audit_block WHERE first_seq <= 2 AND last_seq >= 2",
            [],
            |r| Ok((r.get(0)?, block_text(r.get(1)?))),
        )
        .expect("the block holding seq 2");
    let changed: String = records
        .lines()
        .map(|l| match l.starts_with("2 ") {
            true => l.replacen(" source=qaqpa-", " source=elsewhere-", 1),
            false => l.to_owned(),
        } + "\n")
        .collect();
    assert_ne!(changed, records, "record 2 was changed");
    conn.execute(
        "UPDATE audit_block SET records = ?1 WHERE first_seq = ?2",
        rusqlite::params![
            zstd::encode_all(changed.as_bytes(), 1).expect("zstd"),
            first
        ],
    )
    .expect("tamper");
    drop(conn);
    let verify = qaqpa()
        .args(["audit", "verify", "--config"])
        .arg(&config)
        .output()
        .expect("verify");
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(!verify.status.success(), "{out}");
    assert!(out.contains("seq 2"), "{out}");
}

/// `qaqpa audit verify` checks the archived part against the files in `[audit] archive_dir`
/// (a relative one in the data directory, where the gateway writes them): records deleted
/// behind a claimed archived range, no trigger dropped and no hash recomputed, are found by
/// the range's missing file.
#[tokio::test]
async fn audit_verify_checks_the_archive_files_and_finds_records_deleted_behind_a_claimed_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_sqlite_gateway(
        dir.path(),
        free_port(),
        "[[route]]\nname = \"echo\"\nadapter = \"http\"\nkinds = [\"http.post\"]\n[route.settings]\nurl = \"http://127.0.0.1:9/deliver\"\n",
        "[audit]\narchive_dir = \"archived\"\n",
    );
    let data = dir.path().join("data");
    let now = OffsetDateTime::now_utc();
    {
        use qaqpa_audit::AuditStore;
        let store = qaqpa_audit::SqliteAuditStore::open(&data).expect("journal");
        let at = |i: usize, t: OffsetDateTime| {
            qaqpa_audit::AuditEvent::auth_ok("api", &format!("key-{i}")).at(t)
        };
        let old = now - time::Duration::days(200);
        for events in [
            (0..3).map(|i| at(i, old)).collect::<Vec<_>>(),
            vec![at(3, now), at(4, now)],
        ] {
            store
                .append(qaqpa_audit::batch(events).expect("entries"))
                .await
                .expect("append");
        }
        let report = store
            .archive(
                now,
                &data.join("archived"),
                qaqpa_audit::Retention::default(),
            )
            .await
            .expect("archive");
        assert_eq!(report.archived, 3);
    }
    let verify = || {
        let out = qaqpa()
            .args(["audit", "verify", "--config"])
            .arg(&config)
            .output()
            .expect("verify");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // Each verify journals its own read first (seq 6 here), and checks it too.
    let (ok, out) = verify();
    assert!(ok, "{out}");
    assert!(
        out.contains("OK: 3 records (seq 4..=6); archived: 3 records in 1 file(s) verified"),
        "{out}"
    );

    // The claimed file is named as one retention would have deleted long ago: that does not
    // pass either, as the older range's file is still there.
    let claimed = "audit-20200101_20200102-000000000004-000000000006.jsonl.gz";
    let journal = rusqlite::Connection::open(data.join("audit.db")).expect("journal db");
    journal
        .execute_batch(&format!(
            "INSERT INTO audit_archive VALUES ((SELECT last_seq FROM audit_head), \
             (SELECT archived_seq + 1 FROM audit_anchor), (SELECT archived_hash FROM audit_anchor), \
             (SELECT last_hash FROM audit_head), '{claimed}', 'x');
             UPDATE audit_anchor SET archived_seq = (SELECT last_seq FROM audit_head), \
             archived_hash = (SELECT last_hash FROM audit_head);
             DELETE FROM audit_block;",
        ))
        .expect("the triggers let a claimed archive through");
    drop(journal);
    let (ok, out) = verify();
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "archived range 4..=6: file {claimed} missing from {}, while the file of the \
             earlier range 1..=3 is there",
            data.join("archived").display()
        )),
        "{out}"
    );
}

/// Starts `qaqpa serve` on `config` (logging to `log`) and waits until it is ready.
async fn serve_until_ready(config: &Path, url: &str, log: &Path) -> KillOnDrop {
    let log_file = std::fs::File::create(log).expect("log");
    let mut gateway = KillOnDrop(
        qaqpa()
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::from(log_file.try_clone().expect("log")))
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("serve"),
    );
    let http = reqwest::Client::new();
    let start = Instant::now();
    while http.get(format!("{url}/readyz")).send().await.is_err() {
        let exited = gateway.0.try_wait().ok().flatten().is_some();
        assert!(
            !exited && start.elapsed() < Duration::from_secs(30),
            "gateway did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gateway
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_without_a_clean_stop_is_journalled_by_the_next_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = write_sqlite_gateway(
        dir.path(),
        port,
        "[[route]]\nname = \"echo\"\nadapter = \"http\"\nkinds = [\"http.post\"]\n[route.settings]\nurl = \"http://127.0.0.1:9/deliver\"\n",
        "[engine]\ndeliver = false\n",
    );
    let admin = create_key(&config, "ops", "admin");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let marker = dir.path().join("data").join("qaqpa.running");
    let unclean = |page: &Value| -> Vec<Value> {
        page["records"]
            .as_array()
            .expect("records")
            .iter()
            .filter(|r| r["event"]["kind"]["type"] == "unclean_stop")
            .cloned()
            .collect()
    };

    // Killed: no stop, no flush.
    let mut first = serve_until_ready(&config, &url, &dir.path().join("first.log")).await;
    assert!(marker.exists(), "a running gateway has its run marker");
    let first_pid = first.0.id();
    first.0.kill().expect("SIGKILL");
    let _ = first.0.wait();
    assert!(marker.exists(), "a killed run leaves its marker");

    // The next run says so, with the killed run's pid.
    let second = serve_until_ready(&config, &url, &dir.path().join("second.log")).await;
    let page = journal_until(&http, &url, &admin, "kind=UNCLEAN_STOP", |p| {
        !unclean(p).is_empty()
    })
    .await;
    let found = unclean(&page);
    assert_eq!(found.len(), 1, "{page:#}");
    let event = &found[0]["event"];
    assert_eq!(event["kind"]["previous_pid"], first_pid, "{event:#}");
    assert!(event["kind"]["previous_start"].is_string(), "{event:#}");
    assert_eq!(event["level"], "warning", "{event:#}");

    // A clean stop removes the marker, and the run after it reports nothing.
    let _ = Command::new("kill")
        .args(["-TERM", &second.0.id().to_string()])
        .status();
    let mut second = second;
    let status = second.0.wait().expect("wait");
    assert!(status.success(), "{status}");
    assert!(!marker.exists(), "a clean stop removes the marker");
    let third_started = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    let _third = serve_until_ready(&config, &url, &dir.path().join("third.log")).await;
    // Once the third run's start is journalled (its CONFIG_CREATED), still one UNCLEAN_STOP.
    // (The killed first run's own CONFIG_CREATED may be missing: it may have died before the
    // journal writer's 25 ms were up, which is what UNCLEAN_STOP warns of.)
    journal_until(
        &http,
        &url,
        &admin,
        &format!("kind=CONFIG_CREATED&from={third_started}"),
        |p| p["records"].as_array().is_some_and(|r| !r.is_empty()),
    )
    .await;
    let page = journal_until(&http, &url, &admin, "kind=UNCLEAN_STOP", |_| true).await;
    assert_eq!(unclean(&page).len(), 1, "{page:#}");
    assert!(marker.exists(), "the running third run has its marker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_start_archives_journal_records_past_the_online_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let store = qaqpa::config::StoreConfig::Sqlite {
        data_dir: data.clone(),
    };
    // A journal whose first records are 200 days old (the online window is 3 months).
    let before = qaqpa::config::Config {
        store: store.clone(),
        ..Default::default()
    };
    let auditor = qaqpa::audit::start(&before).await.expect("journal");
    let old = OffsetDateTime::now_utc() - time::Duration::days(200);
    for i in 0..3 {
        auditor.record(qaqpa_audit::AuditEvent::auth_ok("api", &format!("old-{i}")).at(old));
    }
    let stored = auditor.shutdown(Duration::from_secs(10)).await;
    assert!(stored.stored, "{stored:?}");
    drop(auditor);

    let gw = common::Gateway::start_with(&common::echo_routes("http://127.0.0.1:9", ""), |c| {
        c.store = store
    })
    .await;
    // Without waiting a day: the old records go to an archive soon after the start.
    let archives = data.join("audit-archive");
    let start = Instant::now();
    let archive = loop {
        let found: Vec<_> = files(&archives)
            .into_iter()
            .filter(|f| f.to_string_lossy().ends_with(".jsonl.gz"))
            .collect();
        if let [file] = &found[..] {
            break file.clone();
        }
        assert!(
            found.is_empty() && start.elapsed() < Duration::from_secs(30),
            "no single archive in {}: {found:?}",
            archives.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // It holds records 1 to 3, the old ones…
    let name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a file name");
    assert!(
        name.ends_with("-000000000001-000000000003.jsonl.gz"),
        "{name}"
    );
    // …which have left the online journal.
    let admin = gw.key("ops", qaqpa::auth::Role::Admin).await;
    let online: Value = gw
        .get(&admin, "/v1/admin/audit?kind=AUTH_OK&limit=100")
        .await
        .json()
        .await
        .expect("json");
    assert!(online["records"].is_array(), "{online:#}");
    assert!(!online.to_string().contains("old-"), "{online:#}");
    gw.stop().await;
}

/// The key ids `qaqpa keys list` shows, each with its revocation time (`-` when none).
fn listed_keys(config: &Path) -> Vec<(String, String)> {
    let out = qaqpa()
        .args(["keys", "list", "--config"])
        .arg(config)
        .output()
        .expect("keys list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            Some((cols.first()?.to_string(), cols.get(3)?.to_string()))
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[test]
fn a_key_the_journal_cannot_record_is_not_created_and_a_revocation_is_made_but_fails_loudly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_sqlite_gateway(
        dir.path(),
        free_port(),
        "[[route]]\nname = \"echo\"\nadapter = \"http\"\nkinds = [\"http.post\"]\n[route.settings]\nurl = \"http://127.0.0.1:9/deliver\"\n",
        "",
    );
    let admin = create_key(&config, "ops", "admin");
    let admin_id = admin
        .strip_prefix("qk_")
        .and_then(|t| t.split('.').next())
        .expect("key id")
        .to_string();
    let victim = create_key(&config, "edms-0", "client");
    let victim_id = victim
        .strip_prefix("qk_")
        .and_then(|t| t.split('.').next())
        .expect("key id")
        .to_string();
    let active = |id: &str| (id.to_string(), "-".to_string());
    let mut before = vec![active(&admin_id), active(&victim_id)];
    before.sort();
    assert_eq!(listed_keys(&config), before);
    // From now on the journal refuses every append.
    let journal =
        rusqlite::Connection::open(dir.path().join("data").join("audit.db")).expect("journal db");
    refuse_appends(&journal);

    let created = qaqpa()
        .args([
            "keys", "create", "--client", "edms-1", "--role", "client", "--config",
        ])
        .arg(&config)
        .output()
        .expect("keys create");
    let (out, err) = (
        String::from_utf8_lossy(&created.stdout),
        String::from_utf8_lossy(&created.stderr),
    );
    assert!(!created.status.success(), "{out}{err}");
    assert!(err.contains("no key created"), "{err}");
    assert!(!out.contains("token:"), "{out}");
    assert_eq!(listed_keys(&config), before);

    // A revocation is made while the journal is down (a leaked key must be revocable), and
    // the command fails, saying the journal did not record it.
    let revoked = qaqpa()
        .args(["keys", "revoke", &victim_id, "--config"])
        .arg(&config)
        .output()
        .expect("keys revoke");
    let err = String::from_utf8_lossy(&revoked.stderr);
    assert!(!revoked.status.success(), "{err}");
    assert!(
        err.contains("revoked, but the audit journal did not record it"),
        "{err}"
    );
    let keys = listed_keys(&config);
    assert!(
        keys.iter().any(|(id, at)| id == &victim_id && at != "-"),
        "{keys:?}"
    );
    assert!(keys.contains(&active(&admin_id)), "{keys:?}");

    // With the journal taking records again, a revocation is made and journalled.
    accept_appends(&journal);
    let revoked = qaqpa()
        .args(["keys", "revoke", &admin_id, "--config"])
        .arg(&config)
        .output()
        .expect("keys revoke");
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let keys = listed_keys(&config);
    assert!(keys.iter().all(|(_, at)| at != "-"), "{keys:?}");
    let tail = qaqpa()
        .args(["audit", "tail", "--config"])
        .arg(&config)
        .output()
        .expect("audit tail");
    let tail = String::from_utf8_lossy(&tail.stdout);
    assert!(
        tail.contains(&format!("API key {admin_id} revoked")),
        "{tail}"
    );
    let creations: Vec<&str> = tail
        .lines()
        .filter(|l| l.contains("API key") && l.ends_with(" created"))
        .collect();
    assert_eq!(
        creations.len(),
        2,
        "only the admin and client keys were created: {tail}"
    );
}

#[test]
fn reading_the_journal_from_the_command_line_is_journalled_first_and_refused_when_it_cannot_be() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_sqlite_gateway(
        dir.path(),
        free_port(),
        "[[route]]\nname = \"echo\"\nadapter = \"http\"\nkinds = [\"http.post\"]\n[route.settings]\nurl = \"http://127.0.0.1:9/deliver\"\n",
        "",
    );
    create_key(&config, "ops", "admin");
    let run = |args: &[&str]| qaqpa_as("auditor-anna", &config, args);
    let (ok, out, err) = run(&["audit", "verify"]);
    assert!(ok, "{out}{err}");
    let (ok, tail, err) = run(&["audit", "tail"]);
    assert!(ok, "{err}");
    let reads: Vec<&str> = tail
        .lines()
        .filter(|l| l.contains("OBJECT_ACCESS"))
        .collect();
    assert_eq!(reads.len(), 2, "{tail}");
    assert!(
        reads[0].ends_with("audit journal read by `qaqpa audit verify`"),
        "{tail}"
    );
    assert!(
        reads[1].ends_with("audit journal read by `qaqpa audit tail`"),
        "the tail's own read is journalled before it reads: {tail}"
    );
    // Who read it: the operating system's user, as for every command-line change.
    let journal =
        rusqlite::Connection::open(dir.path().join("data").join("audit.db")).expect("journal db");
    let text = journal_text(&journal);
    let accesses: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("kind=OBJECT_ACCESS"))
        .collect();
    assert_eq!(accesses.len(), 2, "{text}");
    assert!(
        accesses
            .iter()
            .all(|l| l.contains("account=os:auditor-anna")),
        "{accesses:#?}"
    );

    // A journal that takes no record: nothing is shown, and the operator is told why (`audit
    // verify` goes through the same check; each refusal waits out the journal's 10 s).
    refuse_appends(&journal);
    let (ok, out, err) = run(&["audit", "tail"]);
    assert!(!ok, "{out}");
    assert!(out.is_empty(), "shown: {out}");
    assert!(err.contains("nothing read"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_requeue_is_journalled_from_the_api_and_the_command_line_and_not_made_unrecorded(
) {
    let emu = qaqpa_adapter_http::Emulator::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator");
    emu.set_faults(qaqpa_adapter_http::Faults {
        status: Some(422),
        body: Some("refused by the test".into()),
        ..Default::default()
    })
    .expect("faults");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let routes = common::echo_routes(&emu.url(), "");
    let gw = common::Gateway::start_with(&routes, |c| {
        c.store = qaqpa::config::StoreConfig::Sqlite {
            data_dir: data.clone(),
        }
    })
    .await;
    let client = gw.key("edms-a", qaqpa::auth::Role::Client).await;
    let operator = gw.key("ops", qaqpa::auth::Role::Operator).await;
    let admin = gw.key("sec", qaqpa::auth::Role::Admin).await;
    let key_id = |token: &str| {
        token
            .strip_prefix("qk_")
            .and_then(|t| t.split('.').next())
            .expect("key id")
            .to_string()
    };
    let id = gw
        .submit(&client, &json!({"kind": "http.post", "to": "x"}))
        .await;
    let failed = |v: &Value| v["status"] == "failed";
    let view = gw
        .wait_message(&client, &id, Duration::from_secs(10), failed)
        .await;
    let transaction = view["transaction_id"]
        .as_str()
        .expect("transaction")
        .to_owned();

    // From the API: journalled with the operator's key, the message's transaction and route.
    let retried = gw
        .post_json(&operator, &format!("/v1/messages/{id}/retry"), &json!({}))
        .await;
    assert_eq!(retried.status(), 200);
    let page = journal_until(&gw.http, &gw.url, &admin, "kind=MSG_REQUEUED", |p| {
        p["records"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    let records = page["records"].as_array().expect("records");
    assert_eq!(records.len(), 1, "{page:#}");
    let event = &records[0]["event"];
    assert_eq!(event["account"], key_id(&operator).as_str(), "{event:#}");
    assert_eq!(event["transaction_id"], transaction.as_str(), "{event:#}");
    assert_eq!(event["level"], "notice", "{event:#}");
    assert_eq!(event["kind"]["stage"], "requeued", "{event:#}");
    assert_eq!(event["kind"]["message_id"], id.as_str(), "{event:#}");
    assert_eq!(event["kind"]["target"], "echo", "{event:#}");
    assert_eq!(event["kind"]["detail"], "was failed", "{event:#}");
    // The target still refuses: it fails again.
    gw.wait_message(&client, &id, Duration::from_secs(10), |v| {
        failed(v) && v["attempts"] == 2
    })
    .await;
    gw.stop().await;

    // From the command line, on the same store.
    std::fs::write(dir.path().join("routes.toml"), &routes).expect("routes");
    let config = dir.path().join("qaqpa.toml");
    std::fs::write(
        &config,
        format!(
            "routes = \"routes.toml\"\n[store]\nkind = \"sqlite\"\ndata_dir = {:?}\n",
            data.display().to_string()
        ),
    )
    .expect("config");
    let run = |args: &[&str]| qaqpa_as("night-operator", &config, args);
    let status = || {
        let (ok, out, err) = run(&["messages", "show", &id]);
        assert!(ok, "{err}");
        let view: Value = serde_json::from_str(&out).expect("message JSON");
        view["status"].as_str().expect("status").to_owned()
    };
    let journal = rusqlite::Connection::open(data.join("audit.db")).expect("journal db");
    refuse_appends(&journal);
    let (ok, out, err) = run(&["dlq", "retry", &id]);
    assert!(!ok, "{out}");
    assert!(err.contains("not queued again"), "{err}");
    // Nor is the message shown: reading it is journalled too.
    let (ok, out, err) = run(&["messages", "show", &id]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("nothing read"), "{err}");

    accept_appends(&journal);
    assert_eq!(
        status(),
        "failed",
        "a requeue the journal cannot record is not made"
    );
    let (ok, out, err) = run(&["dlq", "retry", &id]);
    assert!(ok, "{err}");
    assert!(out.contains("queued again"), "{out}");
    assert_eq!(status(), "queued");
    let text = journal_text(&journal);
    let requeues: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("kind=MSG_REQUEUED"))
        .collect();
    assert_eq!(requeues.len(), 2, "{requeues:#?}");
    let reads: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.contains(" source=qaqpa-cli ")
                && l.contains("kind=OBJECT_ACCESS")
                && l.contains(" object=message ")
        })
        .collect();
    assert_eq!(reads.len(), 2, "one per `messages show` shown: {reads:#?}");
    assert!(
        reads
            .iter()
            .all(|l| l.contains(" account=os:night-operator ")
                && l.contains(&format!(" transaction_id={transaction} "))),
        "{reads:#?}"
    );
    let by_cli = requeues[1];
    for field in [
        "source=qaqpa-cli".to_owned(),
        "account=os:night-operator".to_owned(),
        format!("transaction_id={transaction}"),
        format!("message_id={id}"),
        "target=echo".to_owned(),
        "level=notice".to_owned(),
    ] {
        assert!(
            by_cli.contains(&format!(" {field} ")) || by_cli.ends_with(&format!(" {field}")),
            "{field} in {by_cli}"
        );
    }
}
