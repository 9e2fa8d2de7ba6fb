//! The config file (`/etc/hearth/hearth.toml`, or `--config`): any text must either load
//! into a Config that passes its own checks or give an error, never a panic.
#![no_main]

use hearth::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(table) = text.parse::<toml::Table>() else {
        return;
    };
    if let Ok(config) = Config::from_table(table) {
        assert!(config.limits.body_bytes >= 1024);
        assert!(config.limits.max_connections >= 1);
        assert!(matches!(config.updates.channel.as_str(), "stable" | "beta"));
        let _ = format!("{config:?}");
    }
});
