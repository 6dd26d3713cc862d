//! The meshgate gateway: configuration, authentication and the wire-protocol
//! front ends over the planner's one query path.
//!
//! This is the only crate that knows protocols. Each front end authenticates
//! a user against the shared [`auth::UserStore`], opens a
//! [`meshgate_planner::QuerySession`] for that identity, and encodes the Arrow
//! batches it gets back; none of them touches DataFusion directly or makes
//! access decisions of its own.
//!
//! The modules from the bottom up; each uses only modules listed before it:
//! - [`limits`], [`request_limits`], [`tls`], [`log_redaction`], [`status`]:
//!   small shared pieces;
//! - `pg_store`, [`policy_store`], [`audit_store`]: state a fleet of
//!   gateways shares in PostgreSQL;
//! - [`auth`]: who is calling, for every front end (with its own settings
//!   types);
//! - [`config`]: `meshgate.toml`, loaded and checked; [`catalog_reload`]:
//!   its catalogs put in force again while serving (SIGHUP, admin API);
//! - [`pgwire`], [`flight_sql`], [`admin`]: the front ends; [`http`]: the
//!   HTTP listener (health, readiness, metrics, info);
//! - [`server`]: builds the gateway from a configuration and runs the
//!   listeners; [`demo`] writes the demo mesh the CLI serves; [`ballista`]
//!   runs a Ballista scheduler or executor that decodes meshgate's plans.

pub mod admin;
pub mod audit_store;
pub mod auth;
pub mod ballista;
pub mod catalog_reload;
pub mod config;
pub mod demo;
pub mod flight_sql;
pub mod http;
pub mod limits;
pub mod log_redaction;
pub mod openlineage;
mod pg_store;
pub mod pgwire;
pub mod policy_store;
pub mod quality;
pub mod request_limits;
pub mod server;
pub mod status;
pub mod tls;

pub use config::{Config, ConfigError};
pub use server::{Gateway, GatewayError, RunningGateway};
