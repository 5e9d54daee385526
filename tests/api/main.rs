//! End-to-end tests: a real gateway on 127.0.0.1 over real mTLS with real signatures, on a
//! real SQLite file (default) or a fresh PostgreSQL database per test when
//! `ALLIANCE_TEST_DATABASE_URL` names a server.
mod admin;
mod hardening;
mod helpers;
mod jobs;
mod lifecycle;
mod ops;
mod settlement;
mod settlement_crash;
mod settlement_totals;
mod signatures;
mod transactions;
mod transport;
mod verify;
