//! Management API value types (PROTOCOL.md §2), shared by the server and the client.

use serde::{Deserialize, Serialize};

/// `GET /management/v1/description`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServerDescription {
    #[serde(rename = "ServerName")]
    pub server_name: String,
    #[serde(rename = "Manufacturer")]
    pub manufacturer: String,
    #[serde(rename = "ManufacturerVersion")]
    pub manufacturer_version: String,
    #[serde(rename = "Location")]
    pub location: String,
}

/// One entry of `GET /management/v1/configureddevices`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfiguredDevice {
    #[serde(rename = "DeviceName")]
    pub device_name: String,
    /// Capitalised ASCOM type name (`Telescope`, `FilterWheel`, …).
    #[serde(rename = "DeviceType")]
    pub device_type: String,
    #[serde(rename = "DeviceNumber")]
    pub device_number: u32,
    /// Persistent, unique per device, ≥ 48 random bits (a UUID).
    #[serde(rename = "UniqueID")]
    pub unique_id: String,
}
