//! What an admitted actor may see of the library, asked of policy: the one mapping of a
//! stored item to what policy judges ([`policy_view`]), and the filters every front end
//! (web, DLNA, the byte path) uses.

use crate::policy::{self, Actor, Context};
use crate::store::library::{ItemKind, ItemRecord, LibraryRecord};
use crate::store::{Store, StoreError};

/// Filters for libraries and items this actor may see now.
pub fn access(
    actor: &Actor,
    ctx: &Context,
) -> (
    impl Fn(&LibraryRecord) -> bool + Send + 'static,
    impl Fn(&ItemRecord) -> bool + Send + 'static,
) {
    let (a1, c1) = (actor.clone(), *ctx);
    let (a2, c2) = (actor.clone(), *ctx);
    (
        move |lib: &LibraryRecord| policy::library_visible(&a1, lib.id, &c1),
        move |item: &ItemRecord| policy::visible(&a2, &policy_view(item), &c2),
    )
}

/// An item as policy sees it: library, kind, the rating as written (with the country the
/// NFO named) and its tags as labels.
pub fn policy_view(item: &ItemRecord) -> policy::ItemView<'_> {
    policy::ItemView {
        library_id: item.library_id,
        kind: match item.kind {
            Some(ItemKind::Movie) => policy::ItemKind::Movie,
            Some(ItemKind::Episode) => policy::ItemKind::Episode,
            Some(ItemKind::Track) => policy::ItemKind::Audio,
            Some(ItemKind::Photo) => policy::ItemKind::Photo,
            Some(ItemKind::Video) | None => policy::ItemKind::Video,
        },
        rating: item.rating.as_ref().map(|r| policy::RawRating {
            country: r.system_hint.as_deref(),
            value: &r.raw,
        }),
        labels: &item.tags,
    }
}

/// The item, if it exists and this actor may see it and its library now; `None` for both
/// "missing" and "hidden", so no caller can tell them apart.
pub fn visible_item(
    store: &Store,
    actor: &Actor,
    ctx: &Context,
    id: u64,
) -> Result<Option<ItemRecord>, StoreError> {
    let Some(item) = store.read(|rx| rx.item(id))? else {
        return Ok(None);
    };
    let Some(lib) = store.read(|rx| rx.library(item.library_id))? else {
        return Ok(None);
    };
    let (lib_ok, item_ok) = access(actor, ctx);
    Ok((lib_ok(&lib) && item_ok(&item)).then_some(item))
}
