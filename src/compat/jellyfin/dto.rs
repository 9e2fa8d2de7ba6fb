//! Hearth's records as the objects Jellyfin apps read: `UserDto`, views (libraries as
//! `CollectionFolder`s), `BaseItemDto` with its `UserData`, and paged results. Built only from
//! records the caller already found visible; nothing here filters or decides.

use serde_json::{Value, json};

use super::TICKS_PER_MS;
use super::ids::JfId;
use crate::library::{ItemKind, ItemRecord, LibraryKind, LibraryRecord};
use crate::store::users::{Role, UserRecord};
use crate::store::watch::WatchRecord;

/// `UserDto`. `is_admin` is policy's answer for this user (the owner), passed in.
pub fn user(u: &UserRecord, server_id: &str, is_admin: bool) -> Value {
    let has_password = u.password_hash.is_some();
    json!({
        "Name": u.username,
        "ServerId": server_id,
        "Id": JfId::user(u.id).to_string(),
        "HasPassword": has_password,
        "HasConfiguredPassword": has_password,
        "HasConfiguredEasyPassword": false,
        "EnableAutoLogin": false,
        "PrimaryImageTag": Value::Null,
        "Configuration": {
            "PlayDefaultAudioTrack": true,
            "SubtitleLanguagePreference": "",
            "DisplayMissingEpisodes": false,
            "SubtitleMode": "Default",
            "EnableNextEpisodeAutoPlay": true,
            "RememberAudioSelections": true,
            "RememberSubtitleSelections": true,
            "HidePlayedInLatest": true,
            "OrderedViews": [],
            "LatestItemsExcludes": [],
            "MyMediaExcludes": [],
            "GroupedFolders": [],
        },
        "Policy": {
            "IsAdministrator": is_admin,
            "IsHidden": true,
            "IsDisabled": false,
            "EnableUserPreferenceAccess": true,
            "EnableRemoteControlOfOtherUsers": false,
            "EnableSharedDeviceControl": false,
            "EnableRemoteAccess": true,
            "EnableLiveTvManagement": false,
            "EnableLiveTvAccess": false,
            "EnableMediaPlayback": true,
            "EnableAudioPlaybackTranscoding": true,
            "EnableVideoPlaybackTranscoding": true,
            "EnablePlaybackRemuxing": true,
            "EnableContentDeletion": false,
            "EnableContentDownloading": false,
            "EnableSyncTranscoding": false,
            "EnableMediaConversion": false,
            "EnableAllDevices": true,
            "EnableAllChannels": false,
            // What a user may open is Hearth's to decide per request; apps only read this.
            "EnableAllFolders": u.role == Role::Owner,
            "EnablePublicSharing": false,
            "AuthenticationProviderId": "Hearth",
            "PasswordResetProviderId": "Hearth",
            "SyncPlayAccess": "None",
        },
    })
}

/// Jellyfin's collection type for a library kind.
fn collection_type(kind: LibraryKind) -> &'static str {
    match kind {
        LibraryKind::Movies => "movies",
        LibraryKind::Shows => "tvshows",
        LibraryKind::Music => "music",
        LibraryKind::Photos => "photos",
        LibraryKind::Videos => "homevideos",
    }
}

/// A library as a view.
pub fn view(lib: &LibraryRecord, server_id: &str) -> Value {
    let id = JfId::library(lib.id).to_string();
    json!({
        "Name": lib.name,
        "ServerId": server_id,
        "Id": id,
        "Etag": format!("{}", lib.last_scan.unwrap_or(0)),
        "Type": "CollectionFolder",
        "CollectionType": collection_type(lib.kind),
        "IsFolder": true,
        "LocationType": "FileSystem",
        "ImageTags": {},
        "BackdropImageTags": [],
        "UserData": {"PlaybackPositionTicks": 0, "PlayCount": 0, "IsFavorite": false, "Played": false, "Key": id},
    })
}

/// The item's Jellyfin type and media type.
fn types(kind: Option<ItemKind>) -> (&'static str, &'static str) {
    match kind {
        Some(ItemKind::Movie) => ("Movie", "Video"),
        Some(ItemKind::Episode) => ("Episode", "Video"),
        Some(ItemKind::Track) => ("Audio", "Audio"),
        Some(ItemKind::Photo) => ("Photo", "Photo"),
        Some(ItemKind::Video) | None => ("Video", "Video"),
    }
}

/// A file's container as Jellyfin names it.
pub fn container_of(content_type: &str, rel_path: &str) -> String {
    match content_type {
        "video/mp4" | "audio/mp4" => "mp4".into(),
        "video/x-matroska" | "audio/x-matroska" => "mkv".into(),
        "video/webm" | "audio/webm" => "webm".into(),
        "audio/mpeg" => "mp3".into(),
        "audio/flac" => "flac".into(),
        _ => rel_path
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .filter(|e| e.len() <= 5)
            .unwrap_or_default(),
    }
}

/// `UserItemDataDto` for an item and this user's one watch record.
pub fn user_data(item_id: u64, duration_ms: Option<u64>, w: Option<&WatchRecord>) -> Value {
    let played = w.is_some_and(|w| w.watched);
    let pos = w.map(|w| w.position_ms).unwrap_or(0);
    let pct = match duration_ms {
        Some(d) if d > 0 && pos > 0 => Value::from((pos as f64 / d as f64 * 100.0).min(100.0)),
        _ => Value::Null,
    };
    json!({
        "PlaybackPositionTicks": pos * TICKS_PER_MS,
        "PlayCount": u32::from(played),
        "IsFavorite": false,
        "Played": played,
        "PlayedPercentage": pct,
        "Key": JfId::item(item_id).to_string(),
        "ItemId": JfId::item(item_id).to_string(),
    })
}

/// `BaseItemDto` of an item. `image_tag` is the credential-bearing tag of its artwork (see
/// `web::jellyfin`), `None` when it has none.
pub fn item(
    i: &ItemRecord,
    server_id: &str,
    w: Option<&WatchRecord>,
    image_tag: Option<String>,
) -> Value {
    let (kind, media_type) = types(i.kind);
    let id = JfId::item(i.id).to_string();
    let mut v = json!({
        "Name": i.title,
        "SortName": i.sort_title,
        "ServerId": server_id,
        "Id": id,
        "Etag": format!("{:x}", i.mtime_ns),
        "DateCreated": rfc3339(i.added_at),
        "Type": kind,
        "MediaType": media_type,
        "IsFolder": false,
        "ParentId": JfId::library(i.library_id).to_string(),
        "LocationType": "FileSystem",
        "Container": container_of(&i.content_type, &i.rel_path),
        "RunTimeTicks": i.duration_ms.map(|d| d * TICKS_PER_MS),
        "ProductionYear": i.year,
        "Overview": i.plot,
        "Genres": i.genres,
        "Tags": i.tags,
        "OfficialRating": i.rating.as_ref().map(|r| r.raw.clone()),
        "ImageTags": image_tag.map(|t| json!({"Primary": t})).unwrap_or_else(|| json!({})),
        "BackdropImageTags": [],
        "UserData": user_data(i.id, i.duration_ms, w),
    });
    let Some(obj) = v.as_object_mut() else {
        return v;
    };
    if let Some(video) = &i.video {
        obj.insert("Width".into(), json!(video.width));
        obj.insert("Height".into(), json!(video.height));
    }
    match i.kind {
        Some(ItemKind::Episode) => {
            obj.insert("SeriesName".into(), json!(i.show));
            obj.insert("ParentIndexNumber".into(), json!(i.season));
            obj.insert("IndexNumber".into(), json!(i.episode));
            obj.insert("IndexNumberEnd".into(), json!(i.episode_end));
            obj.insert("PremiereDate".into(), json!(i.air_date));
        }
        Some(ItemKind::Track) => {
            obj.insert("Album".into(), json!(i.album));
            obj.insert("AlbumArtist".into(), json!(i.artist));
            obj.insert("Artists".into(), json!(i.artist.iter().collect::<Vec<_>>()));
            obj.insert("IndexNumber".into(), json!(i.track));
            obj.insert("ParentIndexNumber".into(), json!(i.disc));
        }
        _ => {}
    }
    v
}

/// `{ Items, TotalRecordCount, StartIndex }`.
pub fn page(items: Vec<Value>, total: usize, start: usize) -> Value {
    json!({"Items": items, "TotalRecordCount": total, "StartIndex": start})
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SS.0000000Z`, the way Jellyfin writes dates.
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm), for 1970 onwards.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.0000000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.0000000Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00.0000000Z");
        assert_eq!(rfc3339(1_798_761_599), "2026-12-31T23:59:59.0000000Z");
    }

    #[test]
    fn watch_state_as_user_data() {
        let w = WatchRecord {
            user_id: 1,
            item_id: 9,
            position_ms: 30_000,
            watched: false,
            updated_at: 0,
        };
        let d = user_data(9, Some(60_000), Some(&w));
        assert_eq!(d["PlaybackPositionTicks"], 300_000_000u64);
        assert_eq!(d["Played"], false);
        assert_eq!(d["PlayedPercentage"], 50.0);
        let d = user_data(
            9,
            None,
            Some(&WatchRecord {
                watched: true,
                position_ms: 0,
                ..w
            }),
        );
        assert_eq!(
            (d["Played"].clone(), d["PlayCount"].clone()),
            (json!(true), json!(1))
        );
    }

    #[test]
    fn containers() {
        assert_eq!(container_of("video/x-matroska", "a.mkv"), "mkv");
        assert_eq!(container_of("application/octet-stream", "a/b.AVI"), "avi");
        assert_eq!(container_of("x", "noext"), "");
    }
}
