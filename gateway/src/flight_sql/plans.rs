//! What a plan this front end keeps between calls (statement tickets,
//! prepared statements) is counted as in bytes: the plan's own estimate
//! ([`Prepared::approximate_bytes`]) plus the identity it was made for, so
//! the stores that keep plans stay bounded in bytes.

use meshgate_planner::datafusion::common::ParamValues;
use meshgate_planner::{Identity, Prepared};

/// The bytes `prepared` is counted as while it is kept.
pub(super) fn plan_bytes(prepared: &Prepared) -> u64 {
    prepared.approximate_bytes()
}

/// The bytes an identity kept with a plan holds (names, groups,
/// attributes).
pub(super) fn identity_bytes(identity: &Identity) -> u64 {
    let groups: usize = identity.groups.iter().map(String::len).sum();
    let attributes: usize = identity
        .attributes
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    let impersonator = identity.impersonator.as_ref().map_or(0, String::len);
    (identity.user.len() + groups + attributes + impersonator) as u64
}

/// The bytes the `$n` values kept with a plan hold.
pub(super) fn params_bytes(params: &ParamValues) -> u64 {
    let bytes: usize = match params {
        ParamValues::List(values) => values.iter().map(|v| v.value.size()).sum(),
        ParamValues::Map(values) => values.iter().map(|(k, v)| k.len() + v.value.size()).sum(),
    };
    bytes as u64
}
