//! `routes.toml`: which adapter instance gets which message, and with what budget.
//!
//! A `[[route]]` matches on kind, client and recipient (each a list of `*` glob patterns) and
//! names the adapter with its settings, timeout, retry budget and per-target limits. The first
//! matching route in file order wins. A `[[service]]` names a synchronous service for
//! `POST /v1/calls/{service}`. Unknown keys are an error, reported with their line and column.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use qaqpa_core::adapter::toml_value::Table;
use serde::Deserialize;

/// The whole routing table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesFile {
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceConfig>,
}

fn any() -> Vec<String> {
    vec!["*".to_string()]
}
fn default_timeout_ms() -> u64 {
    30_000
}
fn default_max_attempts() -> u32 {
    12
}
fn default_max_age_secs() -> u64 {
    24 * 3600
}
fn default_backoff_base_ms() -> u64 {
    500
}
fn default_backoff_cap_ms() -> u64 {
    5 * 60 * 1000
}

/// One route: matching rules and the adapter instance behind them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique name; also the target name for limits, metrics and the circuit breaker.
    pub name: String,
    /// Adapter name (`http`, `shep`, `esedo`…).
    pub adapter: String,
    /// Message kinds this route takes (glob patterns).
    pub kinds: Vec<String>,
    /// Client ids this route serves (glob patterns; default: any).
    #[serde(default = "any")]
    pub clients: Vec<String>,
    /// Recipient ids (`to`) this route serves (glob patterns; default: any).
    #[serde(default = "any")]
    pub recipients: Vec<String>,
    /// Deadline of one attempt.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts before the message is dead-lettered.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Age after which a still-undelivered message is dead-lettered.
    #[serde(default = "default_max_age_secs")]
    pub max_age_secs: u64,
    /// First retry delay ceiling (full jitter below it), doubling per attempt.
    #[serde(default = "default_backoff_base_ms")]
    pub backoff_base_ms: u64,
    /// Largest retry delay ceiling.
    #[serde(default = "default_backoff_cap_ms")]
    pub backoff_cap_ms: u64,
    /// Concurrency, rate limit and circuit breaker of this target.
    #[serde(default)]
    pub limits: qaqpa_resilience::TargetLimitsConfig,
    /// Adapter-specific settings, checked by the adapter at start-up.
    #[serde(default)]
    pub settings: toml::Table,
    /// Whether the target may push receipts and documents to `POST /push/{name}`, and whose
    /// inbox its documents go to. Absent: the push endpoint answers 404 for this route.
    #[serde(default)]
    pub push: Option<PushConfig>,
}

fn default_push_max_bytes() -> usize {
    64 * 1024 * 1024
}

/// What the target behind a route may push to us.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// The client (EDMS) whose inbox receives the documents pushed here.
    pub client: String,
    /// Where that client is told of a new inbox item (signed webhook, as for messages).
    #[serde(default)]
    pub callback_url: Option<String>,
    /// Largest push body accepted.
    #[serde(default = "default_push_max_bytes")]
    pub max_bytes: usize,
}

impl RouteConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.max_age_secs)
    }
    /// Settings as the JSON-shaped table adapters receive.
    pub fn settings_table(&self) -> Table {
        toml_to_json_table(&self.settings)
    }
    fn matches(&self, kind: &str, client: &str, to: &str) -> bool {
        any_match(&self.kinds, kind)
            && any_match(&self.clients, client)
            && any_match(&self.recipients, to)
    }
}

impl RoutesFile {
    /// The route named `name`, if it takes pushes.
    pub fn push_route(&self, name: &str) -> Option<&RouteConfig> {
        self.routes
            .iter()
            .find(|r| r.name == name && r.push.is_some())
    }

    /// The route a message was accepted on.
    pub fn by_name(&self, name: &str) -> Option<&RouteConfig> {
        self.routes.iter().find(|r| r.name == name)
    }
}

/// A synchronous service reachable through `POST /v1/calls/{name}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub name: String,
    pub adapter: String,
    /// Client ids allowed to call it (glob patterns; default: any).
    #[serde(default = "any")]
    pub clients: Vec<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub settings: toml::Table,
}

impl ServiceConfig {
    pub fn settings_table(&self) -> Table {
        toml_to_json_table(&self.settings)
    }
    pub fn allows(&self, client: &str) -> bool {
        any_match(&self.clients, client)
    }
}

/// Why a routes file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RoutesError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl RoutesFile {
    /// Reads and checks a routes file (syntax, unknown keys, duplicate names, sane budgets).
    /// Adapter-specific settings are checked later by [`crate::adapters::Registry`].
    pub fn load(path: &Path) -> Result<Self, RoutesError> {
        Ok(Self::load_with_text(path)?.0)
    }

    /// [`RoutesFile::load`], with the text the routes were parsed from.
    pub fn load_with_text(path: &Path) -> Result<(Self, String), RoutesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RoutesError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let routes = Self::parse(&text, &path.display().to_string())?;
        Ok((routes, text))
    }

    /// Parses routes from text; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, RoutesError> {
        let file: RoutesFile = toml::from_str(text).map_err(|e| RoutesError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        file.check().map_err(|message| RoutesError::Invalid {
            path: origin.to_string(),
            message,
        })?;
        Ok(file)
    }

    fn check(&self) -> Result<(), String> {
        let mut names = BTreeMap::new();
        for (i, r) in self.routes.iter().enumerate() {
            if r.name.trim().is_empty() {
                return Err(format!("route #{} has an empty name", i + 1));
            }
            if names.insert(r.name.clone(), ()).is_some() {
                return Err(format!("route name '{}' is used twice", r.name));
            }
            if r.kinds.is_empty() {
                return Err(format!("route '{}': kinds must not be empty", r.name));
            }
            if r.max_attempts == 0 {
                return Err(format!(
                    "route '{}': max_attempts must be at least 1",
                    r.name
                ));
            }
            if r.timeout_ms == 0 || r.timeout_ms > 10 * 60 * 1000 {
                return Err(format!(
                    "route '{}': timeout_ms must be between 1 and 600000 (got {})",
                    r.name, r.timeout_ms
                ));
            }
            if r.backoff_base_ms == 0 || r.backoff_cap_ms < r.backoff_base_ms {
                return Err(format!(
                    "route '{}': need 0 < backoff_base_ms <= backoff_cap_ms",
                    r.name
                ));
            }
        }
        let mut services = BTreeMap::new();
        for s in &self.services {
            if services.insert(s.name.clone(), ()).is_some() {
                return Err(format!("service name '{}' is used twice", s.name));
            }
        }
        Ok(())
    }

    /// The first route matching a message, if any.
    pub fn route_for(&self, kind: &str, client: &str, to: &str) -> Option<&RouteConfig> {
        self.routes.iter().find(|r| r.matches(kind, client, to))
    }

    /// True when some route takes this kind for this client (used to tell "unknown kind" from
    /// "no route for this recipient").
    pub fn knows_kind(&self, kind: &str, client: &str) -> bool {
        self.routes
            .iter()
            .any(|r| any_match(&r.kinds, kind) && any_match(&r.clients, client))
    }

    pub fn route(&self, name: &str) -> Option<&RouteConfig> {
        self.routes.iter().find(|r| r.name == name)
    }

    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.name == name)
    }
}

fn any_match(patterns: &[String], value: &str) -> bool {
    patterns
        .iter()
        .any(|p| glob_match(p.as_bytes(), value.as_bytes()))
}

/// `*` matches any run of characters (including none); everything else matches itself.
pub fn glob_match(pattern: &[u8], value: &[u8]) -> bool {
    let (mut p, mut v) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while v < value.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = v;
            p += 1;
        } else if p < pattern.len() && pattern[p] == value[v] {
            p += 1;
            v += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            v = mark;
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => serde_json::Value::Object(toml_to_json_table(t)),
    }
}

fn toml_to_json_table(t: &toml::Table) -> Table {
    t.iter()
        .map(|(k, v)| (k.clone(), toml_to_json(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[[route]]
name = "echo"
adapter = "http"
kinds = ["http.post"]
recipients = ["sandbox-*"]
[route.settings]
url = "http://127.0.0.1:9/x"

[[route]]
name = "catch-all"
adapter = "http"
kinds = ["http.*"]
clients = ["edms-*"]
"#;

    #[test]
    fn first_matching_route_wins_and_globs_match() {
        let r = RoutesFile::parse(SAMPLE, "t").expect("parses");
        assert_eq!(
            r.route_for("http.post", "x", "sandbox-echo")
                .map(|r| r.name.as_str()),
            Some("echo")
        );
        assert_eq!(
            r.route_for("http.put", "edms-1", "x")
                .map(|r| r.name.as_str()),
            Some("catch-all")
        );
        assert!(r.route_for("http.put", "other", "x").is_none());
        assert!(r.route_for("esedo.letter", "edms-1", "x").is_none());
        assert!(r.knows_kind("http.post", "anyone"));
        assert!(!r.knows_kind("esedo.letter", "anyone"));
        let s = r.routes[0].settings_table();
        assert_eq!(s["url"], "http://127.0.0.1:9/x");
    }

    #[test]
    fn unknown_key_is_reported_with_its_line() {
        let text = "[[route]]\nname = \"a\"\nadapter = \"http\"\nkinds = [\"k\"]\nretries = 3\n";
        let err = RoutesFile::parse(text, "routes.toml").expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("line 5"), "{msg}");
        assert!(msg.contains("retries"), "{msg}");
    }

    #[test]
    fn duplicate_names_and_zero_budgets_are_refused() {
        let dup = "[[route]]\nname=\"a\"\nadapter=\"http\"\nkinds=[\"k\"]\n[[route]]\nname=\"a\"\nadapter=\"http\"\nkinds=[\"k\"]\n";
        assert!(RoutesFile::parse(dup, "t")
            .expect_err("dup")
            .to_string()
            .contains("used twice"));
        let zero = "[[route]]\nname=\"a\"\nadapter=\"http\"\nkinds=[\"k\"]\nmax_attempts=0\n";
        assert!(RoutesFile::parse(zero, "t")
            .expect_err("zero")
            .to_string()
            .contains("max_attempts"));
    }

    #[test]
    fn glob_matching_handles_stars_anywhere() {
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"a*c", b"abbbc"));
        assert!(glob_match(b"*-echo", b"sandbox-echo"));
        assert!(!glob_match(b"a*c", b"abd"));
        assert!(glob_match(b"a**", b"a"));
        assert!(!glob_match(b"abc", b"ab"));
    }
}
