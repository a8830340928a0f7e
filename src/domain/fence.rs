//! Fencing: every phase that changes an order names the engine and lease epoch it runs under, and
//! is refused unless they still own the order. An engine paused past its lease, or holding an
//! older epoch, writes nothing.

use super::OrderId;

/// Who may write an order's phases: an engine, under the epoch it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub engine: String,
    pub epoch: i64,
}

/// Refuses unless `fence` is the order's owner (`engine`, `epoch`), as read from its row.
pub fn ensure_owner(order: OrderId, engine: &str, epoch: i64, fence: &Fence) -> Result<(), Fenced> {
    if engine == fence.engine && epoch == fence.epoch {
        return Ok(());
    }
    Err(Fenced {
        order,
        owner: Fence {
            engine: engine.to_owned(),
            epoch,
        },
        fence: fence.clone(),
    })
}

/// A phase refused because its engine no longer owns the order (its lease was taken over, or
/// renewed under a newer epoch): it must not act on the order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "fenced: order {order} belongs to {} (epoch {}), not {} (epoch {})",
    owner.engine, owner.epoch, fence.engine, fence.epoch
)]
pub struct Fenced {
    pub order: OrderId,
    pub owner: Fence,
    pub fence: Fence,
}
