//! The one watch state per user and item, and its rules, for every front end (the web app,
//! the Jellyfin API): how far someone got, when an item counts as watched, what "continue
//! watching" holds. Each change is asked of `policy` first (`UpdateWatchState`), so a hidden
//! item's state can be neither read nor written by any front end.

use crate::model::clock::now_secs;
use crate::policy::{self, Actor, Context, Denied};
use crate::store::library::ItemRecord;
use crate::store::watch::WatchRecord;
use crate::store::{Store, StoreError};

use super::visible::{policy_view, visible_item};

/// Past this share of the running time an item counts as watched.
pub const WATCHED_AT: f64 = 0.95;

/// Why a watch-state change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Missing, or hidden from this viewer: front ends answer "not found".
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The item, if this actor may see it and record watching it.
fn watchable(
    store: &Store,
    actor: &Actor,
    ctx: &Context,
    item_id: u64,
) -> Result<ItemRecord, WatchError> {
    let item = visible_item(store, actor, ctx, item_id)?.ok_or(WatchError::NotFound)?;
    policy::authorize(
        actor,
        &policy::Action::UpdateWatchState(&policy_view(&item)),
        ctx,
    )
    .then(|| ())?;
    Ok(item)
}

/// Saves how far `actor`'s user got in an item; at [`WATCHED_AT`] of its length it counts as
/// watched (and starts from the beginning next time). Blocking.
pub fn record_position(
    store: &Store,
    actor: &Actor,
    ctx: &Context,
    user_id: u64,
    item_id: u64,
    position_ms: u64,
) -> Result<WatchRecord, WatchError> {
    let item = watchable(store, actor, ctx, item_id)?;
    let duration = item.duration_ms;
    let position = match duration {
        Some(d) if d > 0 => position_ms.min(d),
        _ => position_ms,
    };
    let rec = store.write(|tx| {
        let mut rec = tx.watch(user_id, item_id)?.unwrap_or(WatchRecord {
            user_id,
            item_id,
            position_ms: 0,
            watched: false,
            updated_at: 0,
        });
        rec.position_ms = position;
        rec.updated_at = now_secs();
        if let Some(d) = duration.filter(|d| *d > 0)
            && position as f64 >= d as f64 * WATCHED_AT
        {
            rec.watched = true;
            rec.position_ms = 0;
        }
        tx.set_watch(&rec)?;
        Ok::<_, StoreError>(rec)
    })?;
    Ok(rec)
}

/// Marks an item watched or not for `actor`'s user. Blocking.
pub fn set_watched(
    store: &Store,
    actor: &Actor,
    ctx: &Context,
    user_id: u64,
    item_id: u64,
    watched: bool,
) -> Result<WatchRecord, WatchError> {
    watchable(store, actor, ctx, item_id)?;
    let rec = WatchRecord {
        user_id,
        item_id,
        position_ms: 0,
        watched,
        updated_at: now_secs(),
    };
    store.write(|tx| tx.set_watch(&rec))?;
    Ok(rec)
}

/// Items `user_id` started and did not finish, most recent first, that `actor` may see now;
/// at most `limit`. Blocking.
pub fn continue_watching(
    store: &Store,
    actor: &Actor,
    ctx: &Context,
    user_id: u64,
    limit: usize,
) -> Result<Vec<(ItemRecord, WatchRecord)>, StoreError> {
    let mut started: Vec<_> = store
        .read(|rx| rx.watch_of_user(user_id))?
        .into_iter()
        .filter(|w| !w.watched && w.position_ms > 0)
        .collect();
    started.sort_by_key(|w| std::cmp::Reverse(w.updated_at));
    let mut out = Vec::new();
    for w in started {
        // Items gone from the library, or no longer allowed, are skipped silently.
        if let Some(item) = visible_item(store, actor, ctx, w.item_id)? {
            out.push((item, w));
            if out.len() == limit {
                break;
            }
        }
    }
    Ok(out)
}
