//! Plans this front end keeps between calls (statement tickets, prepared
//! statements): what one is counted as in bytes (with the identity it was
//! made for), and whether it was made under the policy in force.
//!
//! A plan's real size is not measurable; it is counted from its shape: a
//! fixed cost per plan node and per column of each node's schema, doubled
//! because the first execution keeps the optimised plan beside it (see
//! `meshgate_planner::PlanCache`), plus the statement text. The count only
//! has to grow with the plan so that the stores that keep plans stay
//! bounded in bytes.

use std::sync::Arc;

use meshgate_planner::datafusion::common::tree_node::TreeNodeRecursion;
use meshgate_planner::{Identity, Prepared, QueryService};

/// What one plan node is counted as (the node and its schema's shell).
const NODE_BYTES: u64 = 256;
/// What one column of a node's schema is counted as.
const FIELD_BYTES: u64 = 32;

/// The bytes `prepared` is counted as while it is kept.
pub(super) fn plan_bytes(prepared: &Prepared) -> u64 {
    let text = prepared.sql().len() as u64;
    let Prepared::Query { plan, .. } = prepared else {
        return text;
    };
    let (mut nodes, mut fields) = (0u64, 0u64);
    // Visiting cannot fail: the closure never returns an error.
    let _ = plan.apply_with_subqueries(|node| {
        nodes += 1;
        fields += node.schema().fields().len() as u64;
        Ok(TreeNodeRecursion::Continue)
    });
    text + 2 * (nodes * NODE_BYTES + fields * FIELD_BYTES)
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

/// Whether `prepared` was planned under the policy `service` enforces now.
/// A plan made under another one still runs correctly (the session plans it
/// again), but its schema and its errors may be out of date.
pub(super) fn is_current(prepared: &Prepared, service: &QueryService) -> bool {
    let Prepared::Query { policy, .. } = prepared else {
        return true;
    };
    match (policy, service.policy()) {
        (Some(planned), Some(now)) => Arc::ptr_eq(planned, &now),
        (None, None) => true,
        _ => false,
    }
}
