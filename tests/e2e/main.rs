//! End-to-end tests: a real gateway on an ephemeral port, real clients.
//!
//! One test binary with a module per area keeps link time down.

mod admin_page;
mod attacks;
mod audit_store;
mod ballista;
mod catalog_reload;
mod cli;
mod flight_parts;
mod flight_sessions;
mod flight_sql;
mod limits;
mod operations;
mod ops;
mod pgwire_errors;
mod pgwire_queries;
mod pgwire_session;
mod pgwire_types;
mod policy;
mod products;
mod python_clients;
mod replay;
mod replicas;
mod result_cache;
mod s3;
mod shared_subplans;
mod sql_sources;
mod tls;
mod tpch;
