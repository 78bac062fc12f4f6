//! Events for webhooks, queued in the transaction of the change they announce: nothing is
//! lost, and nothing is announced that did not commit.

use super::backend::Conn;
use crate::domain::{EventType, Timestamp};
use crate::store::StoreResult;

/// Queue one delivery of `event` to each endpoint of `namespace` that subscribes to it, inside
/// the caller's transaction. `data` is the event's `data` object.
// Called by every change that announces itself; the webhook work (issue 12) fills it in.
#[allow(dead_code)]
pub(super) async fn emit(
    conn: &mut Conn,
    namespace: &str,
    event: EventType,
    data: &serde_json::Value,
    now: Timestamp,
) -> StoreResult<()> {
    let _ = (conn, namespace, event, data, now);
    Ok(())
}
