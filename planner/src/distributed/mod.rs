//! Distributed execution on a Ballista cluster (`[execution] ballista`).
//!
//! A query whose every scan reads files (Parquet, CSV, JSON on local disk
//! or object storage) and whose scans add up to at least
//! `ballista_min_scan_bytes` is planned here as usual — under the session's
//! policy, with each restricted table behind its barrier — and its physical
//! plan is then sent to the Ballista scheduler (`offload`), which splits it
//! into stages for its executors. The result streams back through the same
//! front end. Only the plan travels: object store credentials stay in each
//! process's own configuration, and the policy has already been applied.
//!
//! The scheduler and executors must decode meshgate's own plan nodes
//! (`codec`); `meshgate ballista-scheduler` and `meshgate
//! ballista-executor` run Ballista with that codec.

mod codec;
mod offload;

pub use codec::MeshgatePhysicalCodec;
pub(crate) use offload::Offload;
pub use offload::{BallistaExec, BallistaOptions};
