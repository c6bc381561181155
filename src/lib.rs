//! Qaqpa, the integration gateway: an EDMS posts plain REST+JSON; Qaqpa stores it durably,
//! routes it to the right adapter, delivers it with retries, collects receipts and reports back
//! through signed webhooks. See ARCHITECTURE.md for the map.
pub mod adapters;
pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod config_journal;
pub mod engine;
pub mod esedo;
pub mod gateway;
pub mod metrics;
pub mod pki;
pub mod pki_exchanges;
pub mod problem;
pub mod routes;
pub mod sandbox;
pub mod state;
pub mod webhooks;
