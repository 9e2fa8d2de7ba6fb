//! DLNA/UPnP: SSDP discovery and the ContentDirectory and ConnectionManager services.
