//! The privileged helper (`hearth agent`): a root-only unix-socket server with a short,
//! fixed list of verbs, each re-checking its arguments.
