//! Route settings of the ЕСЭДО adapter (`[routes.settings]` in routes.toml): where ШЭП is, who we
//! are in ШЭП and in ЕСЭДО, the service ids, and the letter limits, with the contract's defaults.
use std::time::Duration;

use qaqpa_core::adapter::toml_value::Table;
use qaqpa_core::{Failure, Rejection};
use serde::Deserialize;

/// Typed route settings. Unknown keys are refused so a typo never silently falls back to a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsedoSettings {
    /// The ШЭП SyncChannel endpoint URL (ЕСЭДО, ХЭД and the directory are all reached through it).
    pub endpoint: String,
    /// Our senderId in ШЭП.
    pub sender_id: String,
    /// Name of the environment variable holding our ШЭП sender password, if ШЭП issued one.
    #[serde(default)]
    pub sender_password_env: Option<String>,
    /// Our participant id in ЕСЭДО (`metadataSystem.from` and `senderOrg`).
    pub participant_id: i64,
    /// Our organisation's BIN: the head's and the chancellery's certificates must carry it.
    pub sender_bin: String,
    /// serviceId of ЕСЭДО in ШЭП.
    #[serde(default = "default_service_id")]
    pub service_id: String,
    /// routeId of ЕСЭДО in ШЭП.
    #[serde(default = "default_route_id")]
    pub route_id: String,
    /// serviceId of ХЭД temporary storage.
    #[serde(default = "default_hed_service_id")]
    pub hed_service_id: String,
    /// serviceId of the participants directory (НСИ).
    #[serde(default = "default_nsi_service_id")]
    pub nsi_service_id: String,
    /// The directory's entity name (`EntityName` of GetDataGetItems).
    #[serde(default = "default_nsi_entity")]
    pub nsi_entity: String,
    /// Timeout of one ШЭП exchange, in seconds (the attempt's deadline shortens it further).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Most files in one letter.
    #[serde(default = "default_max_files")]
    pub max_files: usize,
    /// Largest file, in bytes (19 MiB).
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// Largest total of a letter's files, in bytes (50 MiB).
    #[serde(default = "default_max_total_bytes")]
    pub max_total_bytes: u64,
    /// Shortest file name, in characters.
    #[serde(default = "default_min_name_chars")]
    pub min_file_name_chars: usize,
    /// Longest file name, in characters.
    #[serde(default = "default_max_name_chars")]
    pub max_file_name_chars: usize,
    /// Require a valid WS-Security signature on pushes to us (needs a verifier).
    #[serde(default = "default_true")]
    pub require_signed_pushes: bool,
    /// Refuse a letter to a participant missing from the loaded directory (when one is loaded).
    #[serde(default = "default_true")]
    pub check_recipient_in_directory: bool,
}

fn default_service_id() -> String {
    "ESEDO_UNIVERSAL_SERVICE".into()
}
fn default_route_id() -> String {
    "R_ESEDO".into()
}
fn default_hed_service_id() -> String {
    "EDS_TEMP_FILES".into()
}
fn default_nsi_service_id() -> String {
    "ENSI_SeGetDataGetItems".into()
}
fn default_nsi_entity() -> String {
    "NSI_ORG".into()
}
fn default_timeout_secs() -> u64 {
    60
}
fn default_max_files() -> usize {
    10
}
fn default_max_file_bytes() -> u64 {
    19 * 1024 * 1024
}
fn default_max_total_bytes() -> u64 {
    50 * 1024 * 1024
}
fn default_min_name_chars() -> usize {
    3
}
fn default_max_name_chars() -> usize {
    30
}
fn default_true() -> bool {
    true
}

impl EsedoSettings {
    /// Reads and checks a route's settings, naming the offending key.
    pub fn from_table(table: &Table) -> Result<Self, Rejection> {
        let s: EsedoSettings = serde_json::from_value(serde_json::Value::Object(table.clone()))
            .map_err(|e| Rejection::new("settings", e.to_string()))?;
        if !(s.endpoint.starts_with("http://") || s.endpoint.starts_with("https://")) {
            return Err(Rejection::new(
                "settings.endpoint",
                format!("'{}' is not an http(s) URL", s.endpoint),
            ));
        }
        for (key, value) in [
            ("settings.sender_id", &s.sender_id),
            ("settings.service_id", &s.service_id),
            ("settings.route_id", &s.route_id),
            ("settings.hed_service_id", &s.hed_service_id),
            ("settings.nsi_service_id", &s.nsi_service_id),
        ] {
            if value.trim().is_empty() {
                return Err(Rejection::new(key, "must not be empty"));
            }
        }
        if s.sender_bin.len() != 12 || !s.sender_bin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Rejection::new(
                "settings.sender_bin",
                format!("'{}' is not a 12-digit BIN", s.sender_bin),
            ));
        }
        if s.participant_id <= 0 {
            return Err(Rejection::new(
                "settings.participant_id",
                "must be a positive ЕСЭДО participant id",
            ));
        }
        if s.timeout_secs == 0 {
            return Err(Rejection::new(
                "settings.timeout_secs",
                "must be at least 1",
            ));
        }
        if s.max_files == 0 || s.max_file_bytes == 0 || s.max_total_bytes == 0 {
            return Err(Rejection::new(
                "settings.max_files",
                "file limits must be positive",
            ));
        }
        if s.min_file_name_chars > s.max_file_name_chars {
            return Err(Rejection::new(
                "settings.min_file_name_chars",
                "must not exceed max_file_name_chars",
            ));
        }
        Ok(s)
    }

    /// Settings at delivery time: a bad table is a permanent configuration failure.
    pub fn for_delivery(table: &Table) -> Result<Self, Failure> {
        Self::from_table(table).map_err(|r| Failure::permanent("ESEDO_CONFIG", r.to_string()))
    }

    /// Our ШЭП password, read from the environment variable the settings name.
    pub fn password(&self) -> Result<Option<String>, Failure> {
        match &self.sender_password_env {
            None => Ok(None),
            Some(var) => std::env::var(var).map(Some).map_err(|_| {
                Failure::permanent(
                    "ESEDO_CONFIG",
                    format!("environment variable {var} (sender password) is not set"),
                )
            }),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}
