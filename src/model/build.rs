//! What this firmware is: the binary's version, the image's version, the target.

/// `X.Y.Z` of this build of the binary. What the device reports is [`version()`].
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where an image names its firmware version (`IMAGE_ID=hearth…`, `IMAGE_VERSION=X.Y.Z`).
pub const OS_RELEASE: &str = "/usr/lib/os-release";

/// The version this device runs: the image's `IMAGE_VERSION` when the root filesystem is a
/// Hearth image (image/build writes it; an update bundle carries a new root with a new one),
/// else this binary's [`VERSION`] (a laptop, a development box).
pub fn version() -> &'static str {
    static V: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        std::fs::read_to_string(OS_RELEASE)
            .ok()
            .and_then(|text| image_version(&text))
            .map(|v| &*Box::leak(v.into_boxed_str()))
            .unwrap_or(VERSION)
    })
}

/// `IMAGE_VERSION` of an os-release file, if `IMAGE_ID` says it is a Hearth image and the
/// version is a plain `X.Y.Z` (what update bundles compare).
pub fn image_version(os_release: &str) -> Option<String> {
    let field = |key: &str| {
        os_release.lines().find_map(|l| {
            let v = l.trim().strip_prefix(key)?.strip_prefix('=')?;
            Some(v.trim().trim_matches('"').to_owned())
        })
    };
    let id = field("IMAGE_ID")?;
    let v = field("IMAGE_VERSION")?;
    let plain = v.parse::<super::version::Version>().is_ok();
    (id.starts_with("hearth") && plain).then_some(v)
}
/// The target triple this binary was built for.
pub const TARGET: &str = env!("BUILD_TARGET_TRIPLE");

#[cfg(test)]
mod tests {
    use super::image_version;

    #[test]
    fn image_version_from_os_release() {
        let debian =
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n";
        let cases: &[(&str, Option<&str>)] = &[
            ("", None),
            (debian, None),
            (
                "IMAGE_ID=hearth-generic-x86_64\nIMAGE_VERSION=0.4.1\n",
                Some("0.4.1"),
            ),
            (
                "IMAGE_ID=\"hearth-rpi4\"\nIMAGE_VERSION=\"1.2.3\"\n",
                Some("1.2.3"),
            ),
            // Someone else's image, or not a version an update can compare.
            ("IMAGE_ID=other\nIMAGE_VERSION=0.4.1\n", None),
            ("IMAGE_ID=hearth\nIMAGE_VERSION=0.4.1-rc1\n", None),
            ("IMAGE_ID=hearth\nIMAGE_VERSION=../../etc\n", None),
            ("IMAGE_ID=hearth\n", None),
            ("IMAGE_VERSION_X=1.0.0\nIMAGE_ID=hearth\n", None),
        ];
        for (text, want) in cases {
            let full = format!("{debian}{text}");
            assert_eq!(image_version(&full).as_deref(), *want, "{text:?}");
        }
    }
}
