//! The ASCOM device interfaces, each declared once with [`alpaca_interface!`](crate::macros).
//!
//! Implement a device by implementing [`Device`] plus one of [`Telescope`], [`Camera`],
//! [`Dome`], [`Focuser`], [`FilterWheel`], [`Rotator`] with `#[async_trait]` (re-exported as
//! [`crate::async_trait`]). Every member has a default body returning NotImplemented (0x400),
//! so an implementation only writes what it supports:
//!
//! ```
//! use bigskies_alpaca::{async_trait, AlpacaResult, devices::{Device, Focuser}};
//!
//! struct Knob;
//!
//! #[async_trait]
//! impl Device for Knob {
//!     async fn connected(&self) -> AlpacaResult<bool> { Ok(true) }
//! }
//!
//! #[async_trait]
//! impl Focuser for Knob {
//!     async fn position(&self) -> AlpacaResult<i32> { Ok(1200) }
//! }
//! ```
//!
//! Names follow the ASCOM member in snake case; property writes are `set_<name>`. The ASCOM
//! `Move` (Focuser, Rotator) is `move_` because `move` is a Rust keyword, and the camera's
//! `SetCCDTemperature` property is read with `set_ccd_temperature()` and written with
//! `set_set_ccd_temperature(value)`.
//!
//! Interface versions: ITelescopeV4, ICameraV4, IDomeV3, IFocuserV4, IFilterWheelV3,
//! IRotatorV4 (members checked against `AlpacaDeviceAPI_v1.yaml`).

use chrono::{DateTime, Utc};

use crate::image::ImageArray;
use crate::types::*;
use crate::wire::MemberInfo;

alpaca_interface! {
    common
    /// Members every Alpaca device has (PROTOCOL.md §4). `connected`, `connecting` and
    /// `interface_version` must work while disconnected.
    trait Device;
    table COMMON_MEMBERS;
    dispatch dispatch_common;
    members {
        /// Invoke a device-specific action; names are matched case-insensitively, unknown → 0x40C.
        PUT Action fn action(Action action: String, Parameters parameters: String) -> String;
        /// Deprecated in Platform 7.
        PUT CommandBlind fn command_blind(Command command: String, Raw raw: bool) -> ();
        /// Deprecated in Platform 7.
        PUT CommandBool fn command_bool(Command command: String, Raw raw: bool) -> bool;
        /// Deprecated in Platform 7.
        PUT CommandString fn command_string(Command command: String, Raw raw: bool) -> String;
        GET Connected fn connected() -> bool;
        /// Idempotent; after `false`, `connected()` must read false.
        PUT Connected fn set_connected(Connected connected: bool) -> ();
        /// Platform 7 asynchronous connect; completion is `connecting() == false`.
        PUT Connect fn connect() -> ();
        /// Platform 7 asynchronous disconnect.
        PUT Disconnect fn disconnect() -> ();
        GET Connecting fn connecting() -> bool;
        /// At most 64 characters.
        GET Description fn description() -> String;
        /// Operational properties only, exact member-name casing, optional `TimeStamp`.
        GET DeviceState fn device_state() -> Vec<DeviceStateItem>;
        GET DriverInfo fn driver_info() -> String;
        /// "n.n"
        GET DriverVersion fn driver_version() -> String;
        GET InterfaceVersion fn interface_version() -> i32;
        GET Name fn name() -> String;
        GET SupportedActions fn supported_actions() -> Vec<String>;
    }
}

alpaca_interface! {
    device
    /// ITelescopeV4 (PROTOCOL.md §5).
    trait Telescope;
    device_type Telescope;
    remote RemoteTelescope;
    table TELESCOPE_MEMBERS;
    dispatch dispatch_telescope;
    members {
        GET AlignmentMode fn alignment_mode() -> AlignmentMode;
        /// Degrees above the horizon.
        GET Altitude fn altitude() -> f64;
        /// m².
        GET ApertureArea fn aperture_area() -> f64;
        /// m.
        GET ApertureDiameter fn aperture_diameter() -> f64;
        GET AtHome fn at_home() -> bool;
        GET AtPark fn at_park() -> bool;
        /// Degrees, N = 0, E = 90.
        GET Azimuth fn azimuth() -> f64;
        GET CanFindHome fn can_find_home() -> bool;
        GET CanPark fn can_park() -> bool;
        GET CanPulseGuide fn can_pulse_guide() -> bool;
        GET CanSetDeclinationRate fn can_set_declination_rate() -> bool;
        GET CanSetGuideRates fn can_set_guide_rates() -> bool;
        GET CanSetPark fn can_set_park() -> bool;
        GET CanSetPierSide fn can_set_pier_side() -> bool;
        GET CanSetRightAscensionRate fn can_set_right_ascension_rate() -> bool;
        GET CanSetTracking fn can_set_tracking() -> bool;
        /// Must be false for Alpaca (synchronous slews are 0x400).
        GET CanSlew fn can_slew() -> bool;
        GET CanSlewAltAz fn can_slew_alt_az() -> bool;
        GET CanSlewAltAzAsync fn can_slew_alt_az_async() -> bool;
        GET CanSlewAsync fn can_slew_async() -> bool;
        GET CanSync fn can_sync() -> bool;
        GET CanSyncAltAz fn can_sync_alt_az() -> bool;
        GET CanUnpark fn can_unpark() -> bool;
        /// Degrees.
        GET Declination fn declination() -> f64;
        /// Arc-seconds of declination per SI second.
        GET DeclinationRate fn declination_rate() -> f64;
        PUT DeclinationRate fn set_declination_rate(DeclinationRate declination_rate: f64) -> ();
        GET DoesRefraction fn does_refraction() -> bool;
        PUT DoesRefraction fn set_does_refraction(DoesRefraction does_refraction: bool) -> ();
        GET EquatorialSystem fn equatorial_system() -> EquatorialSystem;
        /// m.
        GET FocalLength fn focal_length() -> f64;
        /// Degrees per second.
        GET GuideRateDeclination fn guide_rate_declination() -> f64;
        PUT GuideRateDeclination fn set_guide_rate_declination(GuideRateDeclination guide_rate_declination: f64) -> ();
        /// Degrees per second.
        GET GuideRateRightAscension fn guide_rate_right_ascension() -> f64;
        PUT GuideRateRightAscension fn set_guide_rate_right_ascension(GuideRateRightAscension guide_rate_right_ascension: f64) -> ();
        GET IsPulseGuiding fn is_pulse_guiding() -> bool;
        /// Hours, 0 ≤ RA < 24.
        GET RightAscension fn right_ascension() -> f64;
        /// Seconds of RA per sidereal second.
        GET RightAscensionRate fn right_ascension_rate() -> f64;
        PUT RightAscensionRate fn set_right_ascension_rate(RightAscensionRate right_ascension_rate: f64) -> ();
        GET SideOfPier fn side_of_pier() -> PierSide;
        PUT SideOfPier fn set_side_of_pier(SideOfPier side_of_pier: PierSide) -> ();
        /// Local apparent sidereal time, hours.
        GET SiderealTime fn sidereal_time() -> f64;
        /// Metres.
        GET SiteElevation fn site_elevation() -> f64;
        PUT SiteElevation fn set_site_elevation(SiteElevation site_elevation: f64) -> ();
        /// Degrees.
        GET SiteLatitude fn site_latitude() -> f64;
        PUT SiteLatitude fn set_site_latitude(SiteLatitude site_latitude: f64) -> ();
        /// Degrees, east positive.
        GET SiteLongitude fn site_longitude() -> f64;
        PUT SiteLongitude fn set_site_longitude(SiteLongitude site_longitude: f64) -> ();
        GET Slewing fn slewing() -> bool;
        /// Seconds.
        GET SlewSettleTime fn slew_settle_time() -> i32;
        PUT SlewSettleTime fn set_slew_settle_time(SlewSettleTime slew_settle_time: i32) -> ();
        GET TargetDeclination fn target_declination() -> f64;
        PUT TargetDeclination fn set_target_declination(TargetDeclination target_declination: f64) -> ();
        GET TargetRightAscension fn target_right_ascension() -> f64;
        PUT TargetRightAscension fn set_target_right_ascension(TargetRightAscension target_right_ascension: f64) -> ();
        GET Tracking fn tracking() -> bool;
        PUT Tracking fn set_tracking(Tracking tracking: bool) -> ();
        GET TrackingRate fn tracking_rate() -> DriveRate;
        PUT TrackingRate fn set_tracking_rate(TrackingRate tracking_rate: DriveRate) -> ();
        GET TrackingRates fn tracking_rates() -> Vec<DriveRate>;
        /// Written on the wire with a trailing `Z`.
        GET UTCDate fn utc_date() -> DateTime<Utc>;
        PUT UTCDate fn set_utc_date(UTCDate utc_date: DateTime<Utc>) -> ();
        PUT AbortSlew fn abort_slew() -> ();
        GET AxisRates fn axis_rates(Axis axis: TelescopeAxis) -> Vec<AxisRate>;
        GET CanMoveAxis fn can_move_axis(Axis axis: TelescopeAxis) -> bool;
        GET DestinationSideOfPier fn destination_side_of_pier(RightAscension right_ascension: f64, Declination declination: f64) -> PierSide;
        /// Asynchronous in V4.
        PUT FindHome fn find_home() -> ();
        /// Degrees per second, sign gives direction; 0 stops the axis.
        PUT MoveAxis fn move_axis(Axis axis: TelescopeAxis, Rate rate: f64) -> ();
        /// Asynchronous in V4.
        PUT Park fn park() -> ();
        /// Duration in milliseconds; asynchronous in V4.
        PUT PulseGuide fn pulse_guide(Direction direction: GuideDirection, Duration duration: i32) -> ();
        PUT SetPark fn set_park() -> ();
        /// Deprecated synchronous slew (0x400 for Alpaca).
        PUT SlewToAltAz fn slew_to_alt_az(Azimuth azimuth: f64, Altitude altitude: f64) -> ();
        PUT SlewToAltAzAsync fn slew_to_alt_az_async(Azimuth azimuth: f64, Altitude altitude: f64) -> ();
        /// Deprecated synchronous slew (0x400 for Alpaca).
        PUT SlewToCoordinates fn slew_to_coordinates(RightAscension right_ascension: f64, Declination declination: f64) -> ();
        PUT SlewToCoordinatesAsync fn slew_to_coordinates_async(RightAscension right_ascension: f64, Declination declination: f64) -> ();
        /// Deprecated synchronous slew (0x400 for Alpaca).
        PUT SlewToTarget fn slew_to_target() -> ();
        PUT SlewToTargetAsync fn slew_to_target_async() -> ();
        PUT SyncToAltAz fn sync_to_alt_az(Azimuth azimuth: f64, Altitude altitude: f64) -> ();
        PUT SyncToCoordinates fn sync_to_coordinates(RightAscension right_ascension: f64, Declination declination: f64) -> ();
        PUT SyncToTarget fn sync_to_target() -> ();
        /// Asynchronous in V4.
        PUT Unpark fn unpark() -> ();
    }
}

alpaca_interface! {
    device
    /// ICameraV4 (PROTOCOL.md §6).
    trait Camera;
    device_type Camera;
    remote RemoteCamera;
    table CAMERA_MEMBERS;
    dispatch dispatch_camera;
    members {
        GET BayerOffsetX fn bayer_offset_x() -> i32;
        GET BayerOffsetY fn bayer_offset_y() -> i32;
        GET BinX fn bin_x() -> i32;
        /// Validated at write time (0x401 outside 1…MaxBinX).
        PUT BinX fn set_bin_x(BinX bin_x: i32) -> ();
        GET BinY fn bin_y() -> i32;
        PUT BinY fn set_bin_y(BinY bin_y: i32) -> ();
        GET CameraState fn camera_state() -> CameraState;
        /// Unbinned pixels.
        GET CameraXSize fn camera_x_size() -> i32;
        GET CameraYSize fn camera_y_size() -> i32;
        GET CanAbortExposure fn can_abort_exposure() -> bool;
        GET CanAsymmetricBin fn can_asymmetric_bin() -> bool;
        GET CanFastReadout fn can_fast_readout() -> bool;
        GET CanGetCoolerPower fn can_get_cooler_power() -> bool;
        GET CanPulseGuide fn can_pulse_guide() -> bool;
        GET CanSetCCDTemperature fn can_set_ccd_temperature() -> bool;
        GET CanStopExposure fn can_stop_exposure() -> bool;
        /// °C.
        GET CCDTemperature fn ccd_temperature() -> f64;
        GET CoolerOn fn cooler_on() -> bool;
        PUT CoolerOn fn set_cooler_on(CoolerOn cooler_on: bool) -> ();
        /// Percent, 0–100.
        GET CoolerPower fn cooler_power() -> f64;
        GET ElectronsPerADU fn electrons_per_adu() -> f64;
        /// Seconds.
        GET ExposureMax fn exposure_max() -> f64;
        GET ExposureMin fn exposure_min() -> f64;
        GET ExposureResolution fn exposure_resolution() -> f64;
        GET FastReadout fn fast_readout() -> bool;
        PUT FastReadout fn set_fast_readout(FastReadout fast_readout: bool) -> ();
        /// Electrons.
        GET FullWellCapacity fn full_well_capacity() -> f64;
        GET Gain fn gain() -> i32;
        PUT Gain fn set_gain(Gain gain: i32) -> ();
        GET GainMax fn gain_max() -> i32;
        GET GainMin fn gain_min() -> i32;
        GET Gains fn gains() -> Vec<String>;
        GET HasShutter fn has_shutter() -> bool;
        GET HeatSinkTemperature fn heat_sink_temperature() -> f64;
        /// Sent as ImageBytes when the client asks for `application/imagebytes`, else JSON.
        GET ImageArray fn image_array() -> ImageArray;
        /// Deprecated; served like `ImageArray`.
        GET ImageArrayVariant fn image_array_variant() -> ImageArray;
        GET ImageReady fn image_ready() -> bool;
        GET IsPulseGuiding fn is_pulse_guiding() -> bool;
        /// Seconds.
        GET LastExposureDuration fn last_exposure_duration() -> f64;
        /// FITS form without zone suffix.
        GET LastExposureStartTime fn last_exposure_start_time() -> FitsDateTime;
        GET MaxADU fn max_adu() -> i32;
        GET MaxBinX fn max_bin_x() -> i32;
        GET MaxBinY fn max_bin_y() -> i32;
        /// Binned pixels; no range check at write time.
        GET NumX fn num_x() -> i32;
        PUT NumX fn set_num_x(NumX num_x: i32) -> ();
        GET NumY fn num_y() -> i32;
        PUT NumY fn set_num_y(NumY num_y: i32) -> ();
        GET Offset fn offset() -> i32;
        PUT Offset fn set_offset(Offset offset: i32) -> ();
        GET OffsetMax fn offset_max() -> i32;
        GET OffsetMin fn offset_min() -> i32;
        GET Offsets fn offsets() -> Vec<String>;
        GET PercentCompleted fn percent_completed() -> i32;
        /// µm.
        GET PixelSizeX fn pixel_size_x() -> f64;
        GET PixelSizeY fn pixel_size_y() -> f64;
        GET ReadoutMode fn readout_mode() -> i32;
        PUT ReadoutMode fn set_readout_mode(ReadoutMode readout_mode: i32) -> ();
        GET ReadoutModes fn readout_modes() -> Vec<String>;
        GET SensorName fn sensor_name() -> String;
        GET SensorType fn sensor_type() -> SensorType;
        /// The cooler set point (°C).
        GET SetCCDTemperature fn set_ccd_temperature() -> f64;
        PUT SetCCDTemperature fn set_set_ccd_temperature(SetCCDTemperature set_ccd_temperature: f64) -> ();
        /// Binned pixels; no range check at write time.
        GET StartX fn start_x() -> i32;
        PUT StartX fn set_start_x(StartX start_x: i32) -> ();
        GET StartY fn start_y() -> i32;
        PUT StartY fn set_start_y(StartY start_y: i32) -> ();
        GET SubExposureDuration fn sub_exposure_duration() -> f64;
        PUT SubExposureDuration fn set_sub_exposure_duration(SubExposureDuration sub_exposure_duration: f64) -> ();
        PUT AbortExposure fn abort_exposure() -> ();
        /// Duration in milliseconds.
        PUT PulseGuide fn pulse_guide(Direction direction: GuideDirection, Duration duration: i32) -> ();
        /// Duration in seconds; asynchronous.
        PUT StartExposure fn start_exposure(Duration duration: f64, Light light: bool) -> ();
        PUT StopExposure fn stop_exposure() -> ();
    }
}

alpaca_interface! {
    device
    /// IDomeV3 (PROTOCOL.md §7).
    trait Dome;
    device_type Dome;
    remote RemoteDome;
    table DOME_MEMBERS;
    dispatch dispatch_dome;
    members {
        GET Altitude fn altitude() -> f64;
        GET AtHome fn at_home() -> bool;
        GET AtPark fn at_park() -> bool;
        GET Azimuth fn azimuth() -> f64;
        GET CanFindHome fn can_find_home() -> bool;
        GET CanPark fn can_park() -> bool;
        GET CanSetAltitude fn can_set_altitude() -> bool;
        GET CanSetAzimuth fn can_set_azimuth() -> bool;
        GET CanSetPark fn can_set_park() -> bool;
        GET CanSetShutter fn can_set_shutter() -> bool;
        GET CanSlave fn can_slave() -> bool;
        GET CanSyncAzimuth fn can_sync_azimuth() -> bool;
        GET ShutterStatus fn shutter_status() -> ShutterState;
        GET Slaved fn slaved() -> bool;
        PUT Slaved fn set_slaved(Slaved slaved: bool) -> ();
        /// True during azimuth, altitude and shutter motion (V3).
        GET Slewing fn slewing() -> bool;
        PUT AbortSlew fn abort_slew() -> ();
        PUT CloseShutter fn close_shutter() -> ();
        PUT FindHome fn find_home() -> ();
        PUT OpenShutter fn open_shutter() -> ();
        PUT Park fn park() -> ();
        PUT SetPark fn set_park() -> ();
        PUT SlewToAltitude fn slew_to_altitude(Altitude altitude: f64) -> ();
        PUT SlewToAzimuth fn slew_to_azimuth(Azimuth azimuth: f64) -> ();
        PUT SyncToAzimuth fn sync_to_azimuth(Azimuth azimuth: f64) -> ();
    }
}

alpaca_interface! {
    device
    /// IFocuserV4 (PROTOCOL.md §8).
    trait Focuser;
    device_type Focuser;
    remote RemoteFocuser;
    table FOCUSER_MEMBERS;
    dispatch dispatch_focuser;
    members {
        GET Absolute fn absolute() -> bool;
        GET IsMoving fn is_moving() -> bool;
        GET MaxIncrement fn max_increment() -> i32;
        GET MaxStep fn max_step() -> i32;
        GET Position fn position() -> i32;
        /// Microns.
        GET StepSize fn step_size() -> f64;
        GET TempComp fn temp_comp() -> bool;
        PUT TempComp fn set_temp_comp(TempComp temp_comp: bool) -> ();
        GET TempCompAvailable fn temp_comp_available() -> bool;
        /// °C.
        GET Temperature fn temperature() -> f64;
        PUT Halt fn halt() -> ();
        /// ASCOM `Move`: absolute position (or relative steps for a relative focuser); asynchronous.
        PUT Move fn move_(Position position: i32) -> ();
    }
}

alpaca_interface! {
    device
    /// IFilterWheelV3 (PROTOCOL.md §9).
    trait FilterWheel;
    device_type FilterWheel;
    remote RemoteFilterWheel;
    table FILTER_WHEEL_MEMBERS;
    dispatch dispatch_filter_wheel;
    members {
        GET FocusOffsets fn focus_offsets() -> Vec<i32>;
        GET Names fn names() -> Vec<String>;
        /// −1 while moving.
        GET Position fn position() -> i32;
        /// Starts the move and returns.
        PUT Position fn set_position(Position position: i32) -> ();
    }
}

alpaca_interface! {
    device
    /// IRotatorV4 (PROTOCOL.md §10).
    trait Rotator;
    device_type Rotator;
    remote RemoteRotator;
    table ROTATOR_MEMBERS;
    dispatch dispatch_rotator;
    members {
        GET CanReverse fn can_reverse() -> bool;
        GET IsMoving fn is_moving() -> bool;
        /// Degrees, 0 ≤ x < 360.
        GET MechanicalPosition fn mechanical_position() -> f64;
        GET Position fn position() -> f64;
        GET Reverse fn reverse() -> bool;
        PUT Reverse fn set_reverse(Reverse reverse: bool) -> ();
        GET StepSize fn step_size() -> f64;
        GET TargetPosition fn target_position() -> f64;
        PUT Halt fn halt() -> ();
        /// ASCOM `Move`: relative degrees; asynchronous.
        PUT Move fn move_(Position position: f64) -> ();
        PUT MoveAbsolute fn move_absolute(Position position: f64) -> ();
        PUT MoveMechanical fn move_mechanical(Position position: f64) -> ();
        PUT Sync fn sync(Position position: f64) -> ();
    }
}

/// The member table of a device type (without the common members; see [`COMMON_MEMBERS`]).
pub fn members_of(device_type: DeviceType) -> &'static [MemberInfo] {
    match device_type {
        DeviceType::Telescope => TELESCOPE_MEMBERS,
        DeviceType::Camera => CAMERA_MEMBERS,
        DeviceType::Dome => DOME_MEMBERS,
        DeviceType::Focuser => FOCUSER_MEMBERS,
        DeviceType::FilterWheel => FILTER_WHEEL_MEMBERS,
        DeviceType::Rotator => ROTATOR_MEMBERS,
    }
}

/// A registered device of any type, as the server holds it.
#[derive(Clone)]
pub enum AnyDevice {
    Telescope(std::sync::Arc<dyn Telescope>),
    Camera(std::sync::Arc<dyn Camera>),
    Dome(std::sync::Arc<dyn Dome>),
    Focuser(std::sync::Arc<dyn Focuser>),
    FilterWheel(std::sync::Arc<dyn FilterWheel>),
    Rotator(std::sync::Arc<dyn Rotator>),
}

impl AnyDevice {
    pub fn device_type(&self) -> DeviceType {
        match self {
            AnyDevice::Telescope(_) => DeviceType::Telescope,
            AnyDevice::Camera(_) => DeviceType::Camera,
            AnyDevice::Dome(_) => DeviceType::Dome,
            AnyDevice::Focuser(_) => DeviceType::Focuser,
            AnyDevice::FilterWheel(_) => DeviceType::FilterWheel,
            AnyDevice::Rotator(_) => DeviceType::Rotator,
        }
    }

    /// The common members of the device.
    pub fn as_device(&self) -> &dyn Device {
        match self {
            AnyDevice::Telescope(d) => d.as_ref(),
            AnyDevice::Camera(d) => d.as_ref(),
            AnyDevice::Dome(d) => d.as_ref(),
            AnyDevice::Focuser(d) => d.as_ref(),
            AnyDevice::FilterWheel(d) => d.as_ref(),
            AnyDevice::Rotator(d) => d.as_ref(),
        }
    }

    /// Runs one request against the type's table, then the common table.
    pub async fn dispatch(
        &self,
        verb: Verb,
        member: &str,
        params: &crate::wire::Params,
    ) -> crate::wire::Dispatch {
        use crate::wire::Dispatch;
        let specific = match self {
            AnyDevice::Telescope(d) => dispatch_telescope(d.as_ref(), verb, member, params).await,
            AnyDevice::Camera(d) => dispatch_camera(d.as_ref(), verb, member, params).await,
            AnyDevice::Dome(d) => dispatch_dome(d.as_ref(), verb, member, params).await,
            AnyDevice::Focuser(d) => dispatch_focuser(d.as_ref(), verb, member, params).await,
            AnyDevice::FilterWheel(d) => {
                dispatch_filter_wheel(d.as_ref(), verb, member, params).await
            }
            AnyDevice::Rotator(d) => dispatch_rotator(d.as_ref(), verb, member, params).await,
        };
        match specific {
            Dispatch::NoMember => dispatch_common(self.as_device(), verb, member, params).await,
            done => done,
        }
    }
}

impl std::fmt::Debug for AnyDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AnyDevice({})", self.device_type())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn tables() -> Vec<(&'static str, &'static [MemberInfo])> {
        vec![
            ("common", COMMON_MEMBERS),
            ("telescope", TELESCOPE_MEMBERS),
            ("camera", CAMERA_MEMBERS),
            ("dome", DOME_MEMBERS),
            ("focuser", FOCUSER_MEMBERS),
            ("filterwheel", FILTER_WHEEL_MEMBERS),
            ("rotator", ROTATOR_MEMBERS),
        ]
    }

    #[test]
    fn tables_match_the_openapi_member_list_exactly() {
        let expected: BTreeSet<String> = include_str!("fixtures/openapi_members.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| l.trim().to_owned())
            .collect();
        let mut actual = BTreeSet::new();
        for (type_name, table) in tables() {
            for m in table {
                let params: Vec<&str> = m.params.iter().map(|p| p.name).collect();
                let line = format!("{type_name} {} {} {}", m.verb, m.path(), params.join(","));
                actual.insert(line.trim().to_owned());
            }
        }
        let missing: Vec<_> = expected.difference(&actual).collect();
        let extra: Vec<_> = actual.difference(&expected).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "missing {missing:#?}\nextra {extra:#?}"
        );
    }

    #[test]
    fn members_are_unique_and_never_shadow_common_members() {
        let common: BTreeSet<&str> = COMMON_MEMBERS.iter().map(|m| m.name).collect();
        for (type_name, table) in tables() {
            let mut seen = BTreeSet::new();
            let mut methods = BTreeSet::new();
            for m in table {
                assert!(
                    seen.insert((m.name, m.verb)),
                    "{type_name}: {} {} twice",
                    m.verb,
                    m.name
                );
                assert!(
                    methods.insert(m.method),
                    "{type_name}: method {} twice",
                    m.method
                );
                if type_name != "common" {
                    assert!(
                        !common.contains(m.name),
                        "{type_name}: {} shadows a common member",
                        m.name
                    );
                }
            }
        }
    }

    #[test]
    fn members_of_returns_each_types_table() {
        for t in DeviceType::ALL {
            let table = members_of(*t);
            let expected = tables()
                .into_iter()
                .find(|(n, _)| *n == t.path())
                .map(|(_, tb)| tb);
            assert_eq!(Some(table.as_ptr()), expected.map(|tb| tb.as_ptr()), "{t}");
        }
    }
}
