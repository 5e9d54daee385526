//! The settlement gateway of the mall's partner alliance (会员特权通).
//!
//! Layout: `domain` holds the parsed newtypes; `db` the storage on SQLite or PostgreSQL;
//! `pki` the CA and key files; `signature` RFC 9421 without any HTTP framework; `auth` the
//! checks every request passes; `members` and `partners` the use cases; `http` the actix-web
//! edge; `startup` builds the servers; `cli` the admin commands.
pub mod alliance;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod http;
pub mod json_shape;
pub mod lifecycle;
pub mod members;
pub mod partners;
pub mod pki;
pub mod rate_limit;
pub mod reconciliation;
pub mod registry;
pub mod settlement;
pub mod signature;
pub mod startup;
pub mod telemetry;
pub mod transactions;
