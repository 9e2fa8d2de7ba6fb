//! File and folder names come from disks anyone may plug in: every name parser must
//! accept any string without panicking, and titles must come from the name itself.
#![no_main]

use hearth::library::names;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(stem) = std::str::from_utf8(data) else {
        return;
    };
    let _ = names::parse_movie(stem);
    let _ = names::parse_episode(stem);
    let _ = names::parse_season_dir(stem);
    let _ = names::parse_track(stem);
    let _ = names::sort_key(stem);
    let _ = hearth::stream::subtitles::srt_to_vtt(stem);
});
