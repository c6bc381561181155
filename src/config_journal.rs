//! What configuration is in force, and what changed since the gateway last started, for the
//! audit journal (CONFIG_CREATED / CONFIG_CHANGED / CONFIG_DELETED events).
//!
//! The gateway's routes and services change by editing `routes.toml` and restarting, so a
//! change is found at start-up: each start takes a fingerprint of every route and service (its
//! TOML table as parsed, keys sorted, so comments, blank lines and the order of keys do not
//! count) and of the routes' order, compares it with the fingerprint the previous start left
//! beside the journal's local files, journals what was added, removed or changed, and, once
//! those events are stored, writes the new fingerprint in its place.
//!
//! A route's settings may hold a secret (an HTTP header with a token), so the digests are
//! HMAC-SHA256 under a key derived from the webhook master secret, never a bare hash that could
//! be tried against guesses; a new master secret makes every route read as changed once. The
//! gateway's own settings (`qaqpa.toml`) are not compared: their paths are resolved against the
//! directory the config was named from, which differs between two starts of the same file.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use qaqpa_audit::{AuditEvent, Auditor, ChangeOp};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Hex digits of a digest kept in the fingerprint and the events.
const DIGEST_HEX: usize = 16;

/// The fingerprint of the routes file: a digest per route and service, by name, and the
/// routes' order (the first route that matches a message takes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fingerprint {
    pub routes: BTreeMap<String, String>,
    pub route_order: Vec<String>,
    pub services: BTreeMap<String, String>,
}

/// The key the digests are made under, derived from the webhook master secret.
pub fn digest_key(master_secret: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(master_secret).expect("HMAC takes any key");
    mac.update(b"qaqpa configuration fingerprint v1");
    mac.finalize().into_bytes().to_vec()
}

fn digest(key: &[u8], text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(text.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..DIGEST_HEX / 2])
}

impl Fingerprint {
    /// The fingerprint of a routes file's text. Each table is digested as JSON of the parsed
    /// TOML (tables are sorted maps), so only what the file says counts, not how.
    pub fn of_text(text: &str, key: &[u8]) -> Result<Fingerprint, String> {
        let file: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let tables = |name: &str| -> Vec<(String, String)> {
            file.get(name)
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .map(|t| {
                            let name = t
                                .get("name")
                                .and_then(|n| n.as_str())
                                .unwrap_or_default()
                                .to_owned();
                            let json = serde_json::to_string(t).unwrap_or_default();
                            (name, digest(key, &json))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let routes = tables("route");
        Ok(Fingerprint {
            route_order: routes.iter().map(|(n, _)| n.clone()).collect(),
            routes: routes.into_iter().collect(),
            services: tables("service").into_iter().collect(),
        })
    }

    /// One digest of all routes (in their order) and services together.
    fn routes_digest(&self, key: &[u8]) -> String {
        digest(key, &serde_json::to_string(self).unwrap_or_default())
    }

    /// What changed from `before` to `self`, one entry per object, in a stable order: routes,
    /// then services, each by name, then the order of the routes both have.
    pub fn changes_since(&self, before: &Fingerprint) -> Vec<(ChangeOp, String)> {
        let mut out = Vec::new();
        for (what, now, then) in [
            ("route", &self.routes, &before.routes),
            ("service", &self.services, &before.services),
        ] {
            let names: std::collections::BTreeSet<&String> =
                now.keys().chain(then.keys()).collect();
            for name in names {
                match (then.get(name), now.get(name)) {
                    (None, Some(d)) => out.push((
                        ChangeOp::Created,
                        format!("{what} '{name}' added since the last start ({d})"),
                    )),
                    (Some(d), None) => out.push((
                        ChangeOp::Deleted,
                        format!("{what} '{name}' removed since the last start (was {d})"),
                    )),
                    (Some(a), Some(b)) if a != b => out.push((
                        ChangeOp::Changed,
                        format!("{what} '{name}' changed since the last start ({a} -> {b})"),
                    )),
                    _ => {}
                }
            }
        }
        // Routes kept from before that now come in another order match messages otherwise.
        let kept = |order: &[String], other: &BTreeMap<String, String>| -> Vec<String> {
            order
                .iter()
                .filter(|n| other.contains_key(*n))
                .cloned()
                .collect()
        };
        let (was, is) = (
            kept(&before.route_order, &self.routes),
            kept(&self.route_order, &before.routes),
        );
        if was != is {
            out.push((
                ChangeOp::Changed,
                format!(
                    "route order changed since the last start ({} -> {})",
                    was.join(", "),
                    is.join(", ")
                ),
            ));
        }
        out
    }
}

/// What the previous start left in `path`: `Ok(None)` when nothing (a first start), an error
/// when the file is there but cannot be read as a fingerprint.
fn previous(path: &Path) -> Result<Option<Fingerprint>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{} is not a fingerprint: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Replaces the fingerprint in `path`: a file of this process's own, synced, renamed over the
/// old one and the directory synced, so a crash leaves one or the other whole and two
/// processes never write the same temporary file.
fn save(path: &Path, print: &Fingerprint) -> std::io::Result<()> {
    let tmp = path.with_extension(format!(
        "{}.{}.tmp",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ));
    let text = serde_json::to_vec_pretty(print).map_err(std::io::Error::other)?;
    let written = std::fs::write(&tmp, text)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Where a start keeps its fingerprint: `dir/config-in-force.json`, or with a `worker_id`
/// `dir/config-in-force-<worker_id>.json` (replicas may share a directory).
pub fn fingerprint_path(dir: &Path, worker_id: Option<&str>) -> PathBuf {
    match worker_id {
        Some(id) => dir.join(format!(
            "config-in-force-{}.json",
            id.replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
                "_"
            )
        )),
        None => dir.join("config-in-force.json"),
    }
}

/// Journals the routes in force at start-up (`routes_text`, read from `routes_file`) and what
/// changed since the last start (see the module comment), waits until those events are stored,
/// then keeps the new fingerprint in `path`. A fingerprint that cannot be taken, read or
/// written is logged and journalled; it never stops the start.
pub async fn journal_start(
    audit: &Auditor,
    source: &str,
    routes_file: &Path,
    routes_text: &str,
    counts: (usize, usize),
    key: &[u8],
    path: &Path,
) {
    let print = match Fingerprint::of_text(routes_text, key) {
        Ok(p) => p,
        Err(e) => {
            // The text was parsed as routes a moment ago, so this is not expected.
            tracing::warn!(path = %routes_file.display(), error = %e, "cannot take the routes' fingerprint");
            audit.record(AuditEvent::config_change(
                source,
                ChangeOp::Created,
                &format!(
                    "configuration loaded: {} routes, {} services from {}; changes cannot be told: {e}",
                    counts.0,
                    counts.1,
                    routes_file.display()
                ),
            ));
            return;
        }
    };
    audit.record(AuditEvent::config_change(
        source,
        ChangeOp::Created,
        &format!(
            "configuration loaded: {} routes, {} services from {}; routes and services {}",
            counts.0,
            counts.1,
            routes_file.display(),
            print.routes_digest(key)
        ),
    ));
    match previous(path) {
        Ok(Some(before)) => {
            for (op, what) in print.changes_since(&before) {
                audit.record(AuditEvent::config_change(source, op, &what));
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "the last start's routes are unknown; changes since then cannot be told");
            audit.record(AuditEvent::config_change(
                source,
                ChangeOp::Changed,
                &format!("changes since the last start cannot be told: {e}"),
            ));
        }
    }
    // Kept only once the changes are journalled: a start killed before that reports them
    // again at the next start rather than never.
    if !audit.flush_journal().await {
        tracing::warn!("the configuration's events are not stored yet; its fingerprint is not kept, so the next start reports these changes again");
        return;
    }
    if let Err(e) = save(path, &print) {
        tracing::warn!(path = %path.display(), error = %e, "cannot keep the routes' fingerprint; the next start cannot tell what changed");
        audit.record(AuditEvent::config_change(
            source,
            ChangeOp::Changed,
            &format!(
                "the routes' fingerprint cannot be kept in {}: {e}; the next start cannot tell what changed",
                path.display()
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"test key";

    fn print(text: &str) -> Fingerprint {
        Fingerprint::of_text(text, KEY).expect("routes")
    }

    const TWO: &str = r#"
        [[route]]
        name = "echo"
        adapter = "http"
        kinds = ["http.post"]
        [route.settings]
        url = "http://127.0.0.1:1/deliver"
        headers = { Authorization = "Bearer s3cret-token" }

        [[route]]
        name = "old"
        adapter = "http"
        kinds = ["old.post"]
        [route.settings]
        url = "http://127.0.0.1:2/"
    "#;

    #[test]
    fn the_layout_of_the_routes_file_is_not_a_change() {
        let a = print(TWO);
        let b = print(
            r#"
            # the same two
            [[route]]
            kinds = ["http.post"]
            adapter = "http"
            name = "echo"
            [route.settings]
            headers.Authorization = "Bearer s3cret-token"
            url   =   "http://127.0.0.1:1/deliver"
            [[route]]
            name = "old"
            kinds = ["old.post"]
            adapter = "http"
            settings = { url = "http://127.0.0.1:2/" }
            "#,
        );
        assert_eq!(a, b);
        assert!(b.changes_since(&a).is_empty());
    }

    #[test]
    fn digests_depend_on_the_key_so_a_secret_in_a_route_cannot_be_guessed_from_one() {
        let a = print(TWO);
        let b = Fingerprint::of_text(TWO, b"another key").expect("routes");
        assert_ne!(a.routes["echo"], b.routes["echo"]);
        assert_eq!(digest_key(b"m1"), digest_key(b"m1"));
        assert_ne!(digest_key(b"m1"), digest_key(b"m2"));
    }

    #[test]
    fn added_removed_and_changed_routes_and_services_are_each_named() {
        let before = print(TWO);
        let after = print(
            r#"
            [[route]]
            name = "echo"
            adapter = "http"
            kinds = ["http.post"]
            [route.settings]
            url = "http://127.0.0.1:1/deliver"
            headers = { Authorization = "Bearer new-token" }

            [[route]]
            name = "new"
            adapter = "http"
            kinds = ["new.post"]
            [route.settings]
            url = "http://127.0.0.1:3/"

            [[service]]
            name = "company"
            adapter = "shep"
            "#,
        );
        let changes = after.changes_since(&before);
        let said: Vec<(ChangeOp, &str)> = changes
            .iter()
            .map(|(op, what)| (*op, what.split(" since").next().unwrap_or_default()))
            .collect();
        assert_eq!(
            said,
            vec![
                (ChangeOp::Changed, "route 'echo' changed"),
                (ChangeOp::Created, "route 'new' added"),
                (ChangeOp::Deleted, "route 'old' removed"),
                (ChangeOp::Created, "service 'company' added"),
            ],
            "{changes:#?}"
        );
        assert!(
            changes[0].1.contains(&before.routes["echo"])
                && changes[0].1.contains(&after.routes["echo"]),
            "{changes:#?}"
        );
        assert!(!format!("{changes:?}").contains("token"));
    }

    #[test]
    fn routes_in_another_order_are_a_change_and_an_added_route_alone_is_not_a_reorder() {
        let before = print(TWO);
        let mut after = before.clone();
        after.route_order.reverse();
        assert_eq!(
            after.changes_since(&before),
            vec![(
                ChangeOp::Changed,
                "route order changed since the last start (echo, old -> old, echo)".to_owned()
            )]
        );
        let mut grown = before.clone();
        grown.route_order.insert(0, "first".into());
        grown.routes.insert("first".into(), "0".repeat(DIGEST_HEX));
        let changes = grown.changes_since(&before);
        assert_eq!(changes.len(), 1, "{changes:#?}");
        assert!(
            changes[0].1.starts_with("route 'first' added"),
            "{changes:#?}"
        );
    }

    #[test]
    fn the_fingerprint_survives_a_restart_and_a_damaged_one_is_an_error_not_a_first_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = fingerprint_path(dir.path(), Some("replica a/1"));
        assert_eq!(
            path.file_name().and_then(|n| n.to_str()),
            Some("config-in-force-replica_a_1.json")
        );
        assert_eq!(previous(&path), Ok(None));
        let p = print(TWO);
        save(&path, &p).expect("saved");
        assert_eq!(previous(&path), Ok(Some(p)));
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .collect();
        assert_eq!(left.len(), 1, "no temporary file is left: {left:?}");
        std::fs::write(&path, b"{\"routes\": 1").expect("damage");
        let e = previous(&path).expect_err("damaged");
        assert!(e.contains("config-in-force"), "{e}");
    }
}
