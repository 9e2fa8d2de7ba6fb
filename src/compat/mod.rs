//! Other front ends over the same domain: the wire formats of protocols that existing apps
//! speak, mapped onto Hearth's own model. Nothing here decides access: every answer is built
//! from what `library::visible` (asking `policy`) already let through, and bytes go through
//! `stream::access`, the one door. The HTTP handlers live in `web` beside the web app's.

pub mod jellyfin;
