//! The HTTP adapter's route settings (`[routes.settings]` in routes.toml), typed and checked.
//!
//! A bad setting must be refused at start-up naming its key, never discovered at the first
//! delivery; and settings must never override the headers the adapter owns.
use std::collections::BTreeMap;
use std::time::Duration;

use qaqpa_core::adapter::toml_value::Table;
use qaqpa_core::Rejection;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

/// Used when a route sets no `timeout_ms`. The attempt's deadline still caps it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers the adapter sets itself; a route may not set them.
const RESERVED_HEADERS: [&str; 7] = [
    "idempotency-key",
    "x-qaqpa-transaction",
    "content-type",
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
];

/// Settings of one HTTP route. `Debug` shows header names only: their values are often
/// credentials.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Where to POST messages: an `http://` or `https://` URL.
    pub url: String,
    /// Time allowed for one attempt, connection to last byte of the answer, in milliseconds
    /// (default 30,000). The engine's attempt deadline, if sooner, wins.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Extra request headers (e.g. `Authorization`), sent with every message.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("url", &self.url)
            .field("timeout_ms", &self.timeout_ms)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

const KEYS: &str = "url, timeout_ms, headers";

impl HttpSettings {
    /// Reads and checks a route's settings table; a refusal names the key at fault.
    pub fn from_table(table: &Table) -> Result<Self, Rejection> {
        // Deserialise key by key so that a wrong type is reported against its key.
        for (key, value) in table {
            let checked = match key.as_str() {
                "url" => serde_json::from_value::<String>(value.clone()).map(|_| ()),
                "timeout_ms" => serde_json::from_value::<Option<u64>>(value.clone()).map(|_| ()),
                "headers" => {
                    serde_json::from_value::<BTreeMap<String, String>>(value.clone()).map(|_| ())
                }
                other => {
                    return Err(Rejection::new(
                        other,
                        format!("unknown setting of the http adapter (expected one of {KEYS})"),
                    ))
                }
            };
            checked.map_err(|e| Rejection::new(key.as_str(), e.to_string()))?;
        }
        let settings: HttpSettings =
            serde_json::from_value(serde_json::Value::Object(table.clone()))
                .map_err(|e| Rejection::new("url", e.to_string()))?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), Rejection> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| Rejection::new("url", format!("'{}' is not a URL: {e}", self.url)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Rejection::new(
                "url",
                format!(
                    "'{}' must be an http:// or https:// URL with a host",
                    self.url
                ),
            ));
        }
        if self.timeout_ms == Some(0) {
            return Err(Rejection::new("timeout_ms", "must be above 0"));
        }
        self.header_map()?;
        Ok(())
    }

    /// The time allowed for one attempt, before the deadline's cap.
    pub fn timeout(&self) -> Duration {
        self.timeout_ms
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis)
    }

    /// The extra headers, checked.
    pub fn header_map(&self) -> Result<HeaderMap, Rejection> {
        let mut map = HeaderMap::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            let field = format!("headers.{name}");
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Rejection::new(&field, "not a valid HTTP header name"))?;
            if RESERVED_HEADERS.contains(&header.as_str()) {
                return Err(Rejection::new(
                    &field,
                    "is set by the adapter itself and cannot be configured",
                ));
            }
            let value = HeaderValue::from_str(value)
                .map_err(|_| Rejection::new(&field, "not a valid HTTP header value"))?;
            map.insert(header, value);
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table(v: serde_json::Value) -> Table {
        match v {
            serde_json::Value::Object(m) => m,
            _ => Table::new(),
        }
    }

    #[test]
    fn good_settings_parse_with_defaults() {
        let s = HttpSettings::from_table(&table(json!({"url": "http://127.0.0.1:8080/in"})))
            .expect("valid");
        assert_eq!(s.timeout(), DEFAULT_TIMEOUT);
        assert!(s.headers.is_empty());
        let s = HttpSettings::from_table(&table(json!({
            "url": "https://target.example/api",
            "timeout_ms": 1500,
            "headers": {"Authorization": "Bearer x"}
        })))
        .expect("valid");
        assert_eq!(s.timeout(), Duration::from_millis(1500));
        assert_eq!(s.header_map().expect("valid").len(), 1);
    }

    #[test]
    fn each_bad_setting_is_refused_naming_its_key() {
        let cases = [
            (json!({"url": "http://x", "timout_ms": 5}), "timout_ms"),
            (json!({"url": 5}), "url"),
            (json!({}), "url"),
            (json!({"url": "ftp://x/"}), "url"),
            (json!({"url": "not a url"}), "url"),
            (json!({"url": "http://x", "timeout_ms": "5s"}), "timeout_ms"),
            (json!({"url": "http://x", "timeout_ms": 0}), "timeout_ms"),
            (json!({"url": "http://x", "headers": ["a"]}), "headers"),
            (
                json!({"url": "http://x", "headers": {"Idempotency-Key": "k"}}),
                "headers.Idempotency-Key",
            ),
            (
                json!({"url": "http://x", "headers": {"bad name": "v"}}),
                "headers.bad name",
            ),
            (
                json!({"url": "http://x", "headers": {"X-A": "line\nbreak"}}),
                "headers.X-A",
            ),
        ];
        for (settings, key) in cases {
            let err = HttpSettings::from_table(&table(settings.clone()))
                .expect_err(&format!("{settings} must be refused"));
            assert_eq!(err.field, key, "{settings}: {err}");
        }
    }

    #[test]
    fn debug_output_hides_header_values() {
        let s = HttpSettings::from_table(&table(json!({
            "url": "https://target.example/api",
            "headers": {"Authorization": "Bearer s3cr3t"}
        })))
        .expect("valid");
        let shown = format!("{s:?}");
        assert!(shown.contains("Authorization"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn serde_form_also_refuses_unknown_keys() {
        let err = serde_json::from_value::<HttpSettings>(json!({"url": "http://x", "retries": 3}))
            .expect_err("unknown key");
        assert!(err.to_string().contains("unknown field `retries`"), "{err}");
    }
}
