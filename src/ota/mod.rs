//! Over-the-air updates: the channel, bundles and their signatures, download, A/B slots.
