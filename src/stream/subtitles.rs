//! Subtitle sidecars for browsers: `<track>` elements only take WebVTT, so SRT files are
//! converted on the fly (they are small; the size is capped).

/// Largest subtitle file we convert; real ones are well under a megabyte.
pub const MAX_SUBTITLE_BYTES: u64 = 4 * 1024 * 1024;

/// Converts SubRip text to WebVTT: header, `,` → `.` in cue timings, LF line ends. Cue
/// numbers stay (they are valid cue identifiers in WebVTT).
pub fn srt_to_vtt(srt: &str) -> String {
    let text = srt
        .trim_start_matches('\u{feff}')
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str("WEBVTT\n\n");
    for line in text.lines() {
        if line.contains("-->") {
            // Only the two timestamps change; positioning hints after them are kept.
            let mut parts = line.splitn(2, "-->");
            let start = parts.next().unwrap_or("").trim().replace(',', ".");
            let rest = parts.next().unwrap_or("").trim_start();
            let (end, tail) = match rest.split_once(' ') {
                Some((e, t)) => (e.replace(',', "."), format!(" {t}")),
                None => (rest.replace(',', "."), String::new()),
            };
            out.push_str(&format!("{start} --> {end}{tail}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srt_becomes_vtt() {
        let srt = "\u{feff}1\r\n00:00:01,000 --> 00:00:03,000\r\nHello from the subtitles.\r\n\r\n2\r\n00:00:03,500 --> 00:00:05,000 X1:10\r\nSecond line, with a comma.\r\n";
        let vtt = srt_to_vtt(srt);
        assert_eq!(
            vtt,
            "WEBVTT\n\n1\n00:00:01.000 --> 00:00:03.000\nHello from the subtitles.\n\n2\n00:00:03.500 --> 00:00:05.000 X1:10\nSecond line, with a comma.\n"
        );
        assert_eq!(srt_to_vtt(""), "WEBVTT\n\n");
    }
}
