//! What configuration is in force, and what changed since the gateway last started, for the
//! audit journal (CONFIG_CREATED / CONFIG_CHANGED / CONFIG_DELETED events).
//!
//! The gateway's configuration changes by editing its files and restarting, so a change is
//! found at start-up: each start takes a fingerprint of the settings in force (the parsed
//! `qaqpa.toml`) and of every route and service (as parsed from `routes.toml`, so comments,
//! blank lines and the order of keys do not count), compares it with the fingerprint the
//! previous start left in `config-in-force.json` beside the journal's local files, journals
//! what was added, removed or changed, and writes the new fingerprint in its place.
//!
//! The fingerprints are SHA-256 digests of the parsed values: they say *that* something changed
//! and let the SOC tell configurations apart, never what a setting holds. The configuration
//! holds no secret itself (keys, passwords and tokens come from the environment), and none is
//! ever hashed here.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use qaqpa_audit::{AuditEvent, Auditor, ChangeOp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::routes::RoutesFile;

/// The file, in the journal's local directory, holding the fingerprint of the last start.
pub const FILE_NAME: &str = "config-in-force.json";

/// Hex digits of a digest kept in the fingerprint and the events (64 bits: enough to tell
/// configurations apart, short enough to read).
const DIGEST_HEX: usize = 16;

/// The fingerprint of a configuration: a digest of the settings and one per route and
/// service, by name, and the routes' order (the first route that matches a message takes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fingerprint {
    pub settings: String,
    pub routes: BTreeMap<String, String>,
    pub route_order: Vec<String>,
    pub services: BTreeMap<String, String>,
}

fn digest(value: &impl std::fmt::Debug) -> String {
    let hash = Sha256::digest(format!("{value:?}").as_bytes());
    hex::encode(&hash[..DIGEST_HEX / 2])
}

impl Fingerprint {
    /// The fingerprint of `cfg` and `routes` as parsed. Route and service settings are TOML
    /// tables (sorted by key), so the digests do not depend on how the file is laid out.
    pub fn of(cfg: &Config, routes: &RoutesFile) -> Fingerprint {
        Fingerprint {
            settings: digest(cfg),
            routes: routes
                .routes
                .iter()
                .map(|r| (r.name.clone(), digest(r)))
                .collect(),
            route_order: routes.routes.iter().map(|r| r.name.clone()).collect(),
            services: routes
                .services
                .iter()
                .map(|s| (s.name.clone(), digest(s)))
                .collect(),
        }
    }

    /// One digest of all routes (in their order) and services together.
    fn routes_digest(&self) -> String {
        digest(&(&self.routes, &self.route_order, &self.services))
    }

    /// What changed from `before` to `self`, one entry per object, in a stable order: the
    /// settings, then routes, then services, each by name, then the order of the routes both
    /// have.
    pub fn changes_since(&self, before: &Fingerprint) -> Vec<(ChangeOp, String)> {
        let mut out = Vec::new();
        if self.settings != before.settings {
            out.push((
                ChangeOp::Changed,
                format!(
                    "gateway settings changed since the last start ({} -> {})",
                    before.settings, self.settings
                ),
            ));
        }
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

/// What the previous start left in `dir`: `Ok(None)` when nothing (a first start), an error
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

/// Replaces the fingerprint in `path` (a new file renamed over the old one, so a crash leaves
/// one or the other whole).
fn save(path: &Path, print: &Fingerprint) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(print).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Journals the configuration in force at start-up and what changed since the last start
/// (see the module comment), then keeps the new fingerprint in `dir`. A fingerprint that
/// cannot be read or written is logged and journalled as such; it never stops the start.
pub fn journal_start(audit: &Auditor, source: &str, cfg: &Config, routes: &RoutesFile, dir: &Path) {
    let print = Fingerprint::of(cfg, routes);
    let path: PathBuf = dir.join(FILE_NAME);
    audit.record(AuditEvent::config_change(
        source,
        ChangeOp::Created,
        &format!(
            "configuration loaded: {} routes, {} services from {}; settings {}, routes and services {}",
            routes.routes.len(),
            routes.services.len(),
            cfg.routes.display(),
            print.settings,
            print.routes_digest()
        ),
    ));
    match previous(&path) {
        Ok(Some(before)) => {
            for (op, what) in print.changes_since(&before) {
                audit.record(AuditEvent::config_change(source, op, &what));
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "the last start's configuration is unknown; changes since then cannot be told");
            audit.record(AuditEvent::config_change(
                source,
                ChangeOp::Changed,
                &format!("changes since the last start cannot be told: {e}"),
            ));
        }
    }
    if let Err(e) = save(&path, &print) {
        tracing::warn!(path = %path.display(), error = %e, "cannot keep the configuration's fingerprint; the next start cannot tell what changed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(text: &str) -> RoutesFile {
        toml::from_str(text).expect("routes")
    }

    const TWO: &str = r#"
        [[route]]
        name = "echo"
        adapter = "http"
        kinds = ["http.post"]
        [route.settings]
        url = "http://127.0.0.1:1/deliver"
        timeout = 5

        [[route]]
        name = "old"
        adapter = "http"
        kinds = ["old.post"]
        [route.settings]
        url = "http://127.0.0.1:2/"
    "#;

    #[test]
    fn the_layout_of_the_routes_file_is_not_a_change() {
        let cfg = Config::default();
        let a = Fingerprint::of(&cfg, &routes(TWO));
        // The same routes, keys in another order, a comment and other spacing.
        let b = Fingerprint::of(
            &cfg,
            &routes(
                r#"
                # the same two
                [[route]]
                kinds = ["http.post"]
                adapter = "http"
                name = "echo"
                [route.settings]
                timeout = 5
                url   =   "http://127.0.0.1:1/deliver"
                [[route]]
                name = "old"
                kinds = ["old.post"]
                adapter = "http"
                settings = { url = "http://127.0.0.1:2/" }
                "#,
            ),
        );
        assert_eq!(a, b);
        assert!(b.changes_since(&a).is_empty());
    }

    #[test]
    fn added_removed_and_changed_routes_services_and_settings_are_each_named() {
        let before = Fingerprint::of(&Config::default(), &routes(TWO));
        let mut cfg = Config::default();
        cfg.engine.poll_ms += 1;
        let after = Fingerprint::of(
            &cfg,
            &routes(
                r#"
                [[route]]
                name = "echo"
                adapter = "http"
                kinds = ["http.post"]
                [route.settings]
                url = "http://127.0.0.1:1/deliver"
                timeout = 6

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
            ),
        );
        let changes = after.changes_since(&before);
        let said: Vec<(ChangeOp, &str)> = changes
            .iter()
            .map(|(op, what)| (*op, what.split(" since").next().unwrap_or_default()))
            .collect();
        assert_eq!(
            said,
            vec![
                (ChangeOp::Changed, "gateway settings changed"),
                (ChangeOp::Changed, "route 'echo' changed"),
                (ChangeOp::Created, "route 'new' added"),
                (ChangeOp::Deleted, "route 'old' removed"),
                (ChangeOp::Created, "service 'company' added"),
            ],
            "{changes:#?}"
        );
        // Each names the digests it compared, which the SOC can match with the loaded event's.
        assert!(
            changes[1].1.contains(&before.routes["echo"])
                && changes[1].1.contains(&after.routes["echo"]),
            "{changes:#?}"
        );
        assert_ne!(before.routes["echo"], after.routes["echo"]);
    }

    #[test]
    fn routes_in_another_order_are_a_change_and_an_added_route_alone_is_not_a_reorder() {
        let cfg = Config::default();
        let before = Fingerprint::of(&cfg, &routes(TWO));
        let mut reordered = routes(TWO);
        reordered.routes.reverse();
        let after = Fingerprint::of(&cfg, &reordered);
        assert_eq!(
            after.changes_since(&before),
            vec![(
                ChangeOp::Changed,
                "route order changed since the last start (echo, old -> old, echo)".to_owned()
            )]
        );
        let mut grown = routes(TWO);
        let mut first = grown.routes[0].clone();
        first.name = "first".into();
        grown.routes.insert(0, first);
        let changes = Fingerprint::of(&cfg, &grown).changes_since(&before);
        assert_eq!(changes.len(), 1, "{changes:#?}");
        assert!(
            changes[0].1.starts_with("route 'first' added"),
            "{changes:#?}"
        );
    }

    #[test]
    fn the_fingerprint_survives_a_restart_and_a_damaged_one_is_an_error_not_a_first_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        assert_eq!(previous(&path), Ok(None));
        let print = Fingerprint::of(&Config::default(), &routes(TWO));
        save(&path, &print).expect("saved");
        assert_eq!(previous(&path), Ok(Some(print)));
        assert!(!path.with_extension("json.tmp").exists());
        std::fs::write(&path, b"{\"settings\": 1").expect("damage");
        let e = previous(&path).expect_err("damaged");
        assert!(e.contains(FILE_NAME), "{e}");
    }
}
