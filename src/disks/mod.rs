//! Block devices and filesystems: discovery, mount plans, and requests to the agent,
//! which alone may mount. Built in the disks & libraries work (issue 6).
