//! The UPnP device description (built per request: it carries the owner's server name) and
//! the two service descriptions (SCPD), which are fixed documents of this build.

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use super::soap::{CONNECTION_MANAGER, CONTENT_DIRECTORY};

pub const DEVICE_TYPE: &str = "urn:schemas-upnp-org:device:MediaServer:1";
pub const DESCRIPTION_PATH: &str = "/dlna/device.xml";
pub const CD_SCPD_PATH: &str = "/dlna/ContentDirectory.xml";
pub const CM_SCPD_PATH: &str = "/dlna/ConnectionManager.xml";
pub const CD_CONTROL_PATH: &str = "/dlna/control/ContentDirectory";
pub const CM_CONTROL_PATH: &str = "/dlna/control/ConnectionManager";
pub const CD_EVENT_PATH: &str = "/dlna/event/ContentDirectory";
pub const CM_EVENT_PATH: &str = "/dlna/event/ConnectionManager";

fn el(w: &mut Writer<Vec<u8>>, name: &str, value: &str) {
    let _ = w.write_event(Event::Start(BytesStart::new(name)));
    let _ = w.write_event(Event::Text(BytesText::new(value)));
    let _ = w.write_event(Event::End(BytesEnd::new(name)));
}

/// The device description players fetch from SSDP's `LOCATION`.
pub fn device(friendly_name: &str, uuid: &str) -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)));
    let _ = w.write_event(Event::Start(BytesStart::new("root").with_attributes([
        ("xmlns", "urn:schemas-upnp-org:device-1-0"),
        ("xmlns:dlna", "urn:schemas-dlna-org:device-1-0"),
    ])));
    let _ = w.write_event(Event::Start(BytesStart::new("specVersion")));
    el(&mut w, "major", "1");
    el(&mut w, "minor", "0");
    let _ = w.write_event(Event::End(BytesEnd::new("specVersion")));
    let _ = w.write_event(Event::Start(BytesStart::new("device")));
    el(&mut w, "deviceType", DEVICE_TYPE);
    el(&mut w, "friendlyName", friendly_name);
    el(&mut w, "manufacturer", "Hearth");
    el(&mut w, "modelDescription", "Hearth household media server");
    el(&mut w, "modelName", "Hearth");
    el(&mut w, "modelNumber", crate::model::build::version());
    el(&mut w, "UDN", &format!("uuid:{uuid}"));
    el(&mut w, "dlna:X_DLNADOC", "DMS-1.50");
    let _ = w.write_event(Event::Start(BytesStart::new("serviceList")));
    for (ty, id, scpd, control, event) in [
        (
            CONTENT_DIRECTORY,
            "urn:upnp-org:serviceId:ContentDirectory",
            CD_SCPD_PATH,
            CD_CONTROL_PATH,
            CD_EVENT_PATH,
        ),
        (
            CONNECTION_MANAGER,
            "urn:upnp-org:serviceId:ConnectionManager",
            CM_SCPD_PATH,
            CM_CONTROL_PATH,
            CM_EVENT_PATH,
        ),
    ] {
        let _ = w.write_event(Event::Start(BytesStart::new("service")));
        el(&mut w, "serviceType", ty);
        el(&mut w, "serviceId", id);
        el(&mut w, "SCPDURL", scpd);
        el(&mut w, "controlURL", control);
        el(&mut w, "eventSubURL", event);
        let _ = w.write_event(Event::End(BytesEnd::new("service")));
    }
    let _ = w.write_event(Event::End(BytesEnd::new("serviceList")));
    let _ = w.write_event(Event::End(BytesEnd::new("device")));
    let _ = w.write_event(Event::End(BytesEnd::new("root")));
    w.into_inner()
}

/// One argument of an action: name, direction, related state variable.
type Arg = (&'static str, &'static str, &'static str);
/// A state variable: name, data type, evented, allowed values.
type Var = (&'static str, &'static str, bool, &'static [&'static str]);

fn scpd(actions: &[(&str, &[Arg])], vars: &[Var]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)));
    let _ = w.write_event(Event::Start(
        BytesStart::new("scpd").with_attributes([("xmlns", "urn:schemas-upnp-org:service-1-0")]),
    ));
    let _ = w.write_event(Event::Start(BytesStart::new("specVersion")));
    el(&mut w, "major", "1");
    el(&mut w, "minor", "0");
    let _ = w.write_event(Event::End(BytesEnd::new("specVersion")));
    let _ = w.write_event(Event::Start(BytesStart::new("actionList")));
    for (name, args) in actions {
        let _ = w.write_event(Event::Start(BytesStart::new("action")));
        el(&mut w, "name", name);
        let _ = w.write_event(Event::Start(BytesStart::new("argumentList")));
        for (a, dir, var) in *args {
            let _ = w.write_event(Event::Start(BytesStart::new("argument")));
            el(&mut w, "name", a);
            el(&mut w, "direction", dir);
            el(&mut w, "relatedStateVariable", var);
            let _ = w.write_event(Event::End(BytesEnd::new("argument")));
        }
        let _ = w.write_event(Event::End(BytesEnd::new("argumentList")));
        let _ = w.write_event(Event::End(BytesEnd::new("action")));
    }
    let _ = w.write_event(Event::End(BytesEnd::new("actionList")));
    let _ = w.write_event(Event::Start(BytesStart::new("serviceStateTable")));
    for (name, ty, evented, allowed) in vars {
        let _ = w.write_event(Event::Start(
            BytesStart::new("stateVariable")
                .with_attributes([("sendEvents", if *evented { "yes" } else { "no" })]),
        ));
        el(&mut w, "name", name);
        el(&mut w, "dataType", ty);
        if !allowed.is_empty() {
            let _ = w.write_event(Event::Start(BytesStart::new("allowedValueList")));
            for v in *allowed {
                el(&mut w, "allowedValue", v);
            }
            let _ = w.write_event(Event::End(BytesEnd::new("allowedValueList")));
        }
        let _ = w.write_event(Event::End(BytesEnd::new("stateVariable")));
    }
    let _ = w.write_event(Event::End(BytesEnd::new("serviceStateTable")));
    let _ = w.write_event(Event::End(BytesEnd::new("scpd")));
    w.into_inner()
}

/// ContentDirectory:1's SCPD.
pub fn content_directory() -> Vec<u8> {
    const IN: &str = "in";
    const OUT: &str = "out";
    scpd(
        &[
            (
                "GetSearchCapabilities",
                &[("SearchCaps", OUT, "SearchCapabilities")],
            ),
            (
                "GetSortCapabilities",
                &[("SortCaps", OUT, "SortCapabilities")],
            ),
            ("GetSystemUpdateID", &[("Id", OUT, "SystemUpdateID")]),
            (
                "Browse",
                &[
                    ("ObjectID", IN, "A_ARG_TYPE_ObjectID"),
                    ("BrowseFlag", IN, "A_ARG_TYPE_BrowseFlag"),
                    ("Filter", IN, "A_ARG_TYPE_Filter"),
                    ("StartingIndex", IN, "A_ARG_TYPE_Index"),
                    ("RequestedCount", IN, "A_ARG_TYPE_Count"),
                    ("SortCriteria", IN, "A_ARG_TYPE_SortCriteria"),
                    ("Result", OUT, "A_ARG_TYPE_Result"),
                    ("NumberReturned", OUT, "A_ARG_TYPE_Count"),
                    ("TotalMatches", OUT, "A_ARG_TYPE_Count"),
                    ("UpdateID", OUT, "A_ARG_TYPE_UpdateID"),
                ],
            ),
            (
                "Search",
                &[
                    ("ContainerID", IN, "A_ARG_TYPE_ObjectID"),
                    ("SearchCriteria", IN, "A_ARG_TYPE_SearchCriteria"),
                    ("Filter", IN, "A_ARG_TYPE_Filter"),
                    ("StartingIndex", IN, "A_ARG_TYPE_Index"),
                    ("RequestedCount", IN, "A_ARG_TYPE_Count"),
                    ("SortCriteria", IN, "A_ARG_TYPE_SortCriteria"),
                    ("Result", OUT, "A_ARG_TYPE_Result"),
                    ("NumberReturned", OUT, "A_ARG_TYPE_Count"),
                    ("TotalMatches", OUT, "A_ARG_TYPE_Count"),
                    ("UpdateID", OUT, "A_ARG_TYPE_UpdateID"),
                ],
            ),
        ],
        &[
            ("SearchCapabilities", "string", false, &[]),
            ("SortCapabilities", "string", false, &[]),
            ("SystemUpdateID", "ui4", true, &[]),
            ("A_ARG_TYPE_ObjectID", "string", false, &[]),
            ("A_ARG_TYPE_Result", "string", false, &[]),
            ("A_ARG_TYPE_SearchCriteria", "string", false, &[]),
            (
                "A_ARG_TYPE_BrowseFlag",
                "string",
                false,
                &["BrowseMetadata", "BrowseDirectChildren"],
            ),
            ("A_ARG_TYPE_Filter", "string", false, &[]),
            ("A_ARG_TYPE_SortCriteria", "string", false, &[]),
            ("A_ARG_TYPE_Index", "ui4", false, &[]),
            ("A_ARG_TYPE_Count", "ui4", false, &[]),
            ("A_ARG_TYPE_UpdateID", "ui4", false, &[]),
        ],
    )
}

/// ConnectionManager:1's SCPD.
pub fn connection_manager() -> Vec<u8> {
    const IN: &str = "in";
    const OUT: &str = "out";
    scpd(
        &[
            (
                "GetProtocolInfo",
                &[
                    ("Source", OUT, "SourceProtocolInfo"),
                    ("Sink", OUT, "SinkProtocolInfo"),
                ],
            ),
            (
                "GetCurrentConnectionIDs",
                &[("ConnectionIDs", OUT, "CurrentConnectionIDs")],
            ),
            (
                "GetCurrentConnectionInfo",
                &[
                    ("ConnectionID", IN, "A_ARG_TYPE_ConnectionID"),
                    ("RcsID", OUT, "A_ARG_TYPE_RcsID"),
                    ("AVTransportID", OUT, "A_ARG_TYPE_AVTransportID"),
                    ("ProtocolInfo", OUT, "A_ARG_TYPE_ProtocolInfo"),
                    ("PeerConnectionManager", OUT, "A_ARG_TYPE_ConnectionManager"),
                    ("PeerConnectionID", OUT, "A_ARG_TYPE_ConnectionID"),
                    ("Direction", OUT, "A_ARG_TYPE_Direction"),
                    ("Status", OUT, "A_ARG_TYPE_ConnectionStatus"),
                ],
            ),
        ],
        &[
            ("SourceProtocolInfo", "string", true, &[]),
            ("SinkProtocolInfo", "string", true, &[]),
            ("CurrentConnectionIDs", "string", true, &[]),
            (
                "A_ARG_TYPE_ConnectionStatus",
                "string",
                false,
                &[
                    "OK",
                    "ContentFormatMismatch",
                    "InsufficientBandwidth",
                    "UnreliableChannel",
                    "Unknown",
                ],
            ),
            ("A_ARG_TYPE_ConnectionManager", "string", false, &[]),
            (
                "A_ARG_TYPE_Direction",
                "string",
                false,
                &["Input", "Output"],
            ),
            ("A_ARG_TYPE_ProtocolInfo", "string", false, &[]),
            ("A_ARG_TYPE_ConnectionID", "i4", false, &[]),
            ("A_ARG_TYPE_AVTransportID", "i4", false, &[]),
            ("A_ARG_TYPE_RcsID", "i4", false, &[]),
        ],
    )
}
