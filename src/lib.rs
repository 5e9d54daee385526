pub mod audit;
pub mod config;
pub mod db;
pub mod domain;
pub mod pki;
pub mod signature;
