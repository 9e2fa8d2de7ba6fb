//! Security-sensitive: accounts, passwords, sessions and device tokens.
