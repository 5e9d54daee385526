//! The settlement gateway of the mall's partner alliance (会员特权通).
//!
//! Layout, lowest first: `domain` holds the parsed newtypes and `clock` the time; `db` the
//! tables and their queries; `store` the storage engine per backend (pool, threads, batching);
//! `pki` the CA and key files; `signature` RFC 9421 without any HTTP framework; `registry` and
//! `auth` the checks every request passes; `members`, `partners`, `transactions`, `settlement`,
//! `reconciliation` and `lifecycle` the use cases; `jobs` the upkeep; `http` the actix-web
//! edge; `startup` composes the servers; `cli` the admin commands. See
//! `docs/architecture.md`.
pub mod alliance;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod http;
pub mod jobs;
pub mod json_shape;
pub mod lifecycle;
pub mod members;
pub mod monitoring;
pub mod partners;
pub mod pki;
pub mod rate_limit;
pub mod reconciliation;
pub mod registry;
pub mod settlement;
pub mod signature;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod transactions;
