//! Positional astronomy the simulated devices share: Julian dates, sidereal time, hour angle,
//! equatorial ↔ horizontal conversion and the German-mount pointing state.
//!
//! Units follow ASCOM: right ascension, hour angle and sidereal time in **hours**, everything
//! else in **degrees**; azimuth is measured from north through east (N = 0, E = 90).
//! Precision is that of a mount, not an ephemeris: no precession, nutation in longitude
//! (for apparent sidereal time) from the four largest terms only, no refraction, no
//! aberration. Sidereal time follows Meeus, *Astronomical Algorithms* (2nd ed.), ch. 12;
//! the conversions are Meeus ch. 13 with azimuth turned to count from north.

use bigskies_alpaca::types::PierSide;

use crate::clock::SimTime;

/// Julian date of the Unix epoch (1970-01-01T00:00:00Z).
pub const JD_UNIX_EPOCH: f64 = 2_440_587.5;
/// Julian date of J2000.0 (2000-01-01T12:00:00 TT, used here on the UT scale).
pub const JD_J2000: f64 = 2_451_545.0;
/// Sidereal seconds per SI (mean solar) second.
pub const SIDEREAL_PER_SI: f64 = 1.002_737_909_350_795;
/// The sidereal rate: how fast the sky turns, in arc-seconds per SI second (≈ 15.0411″/s).
pub const SIDEREAL_RATE_ARCSEC: f64 = 15.0 * SIDEREAL_PER_SI;
/// ASCOM's nominal lunar tracking rate (DriveRate enum text), arc-seconds per SI second.
pub const LUNAR_RATE_ARCSEC: f64 = 14.685;
/// ASCOM's nominal solar tracking rate, arc-seconds per SI second.
pub const SOLAR_RATE_ARCSEC: f64 = 15.0;
/// ASCOM's nominal King tracking rate, arc-seconds per SI second.
pub const KING_RATE_ARCSEC: f64 = 15.0369;

/// Julian date (UT) of a simulated instant.
pub fn julian_date(t: SimTime) -> f64 {
    t.secs() / 86_400.0 + JD_UNIX_EPOCH
}

/// `x` reduced to `0 ≤ x < 360`.
pub fn wrap_360(x: f64) -> f64 {
    let r = x.rem_euclid(360.0);
    // rem_euclid can round up to exactly the modulus for tiny negative inputs.
    if r >= 360.0 { 0.0 } else { r }
}

/// `x` reduced to `−180 ≤ x < 180`.
pub fn wrap_180(x: f64) -> f64 {
    wrap_360(x + 180.0) - 180.0
}

/// `x` hours reduced to `0 ≤ x < 24`.
pub fn wrap_24(x: f64) -> f64 {
    let r = x.rem_euclid(24.0);
    if r >= 24.0 { 0.0 } else { r }
}

/// `x` hours reduced to `−12 ≤ x < 12`.
pub fn wrap_12(x: f64) -> f64 {
    wrap_24(x + 12.0) - 12.0
}

/// Greenwich mean sidereal time in hours for a Julian date on the UT scale (Meeus 12.4).
pub fn gmst_hours(jd: f64) -> f64 {
    let d = jd - JD_J2000;
    let t = d / 36_525.0;
    let deg =
        280.460_618_37 + 360.985_647_366_29 * d + 0.000_387_933 * t * t - t * t * t / 38_710_000.0;
    wrap_360(deg) / 15.0
}

/// Nutation in longitude and the true obliquity of the ecliptic, both in degrees, from the
/// largest terms of the IAU 1980 series (Meeus ch. 22, good to about 0.5″).
pub fn nutation(jd: f64) -> (f64, f64) {
    let t = (jd - JD_J2000) / 36_525.0;
    let omega = (125.044_52 - 1_934.136_261 * t).to_radians();
    let l_sun = (280.466_5 + 36_000.769_8 * t).to_radians();
    let l_moon = (218.316_5 + 481_267.881_3 * t).to_radians();
    let dpsi_arcsec =
        -17.20 * omega.sin() - 1.32 * (2.0 * l_sun).sin() - 0.23 * (2.0 * l_moon).sin()
            + 0.21 * (2.0 * omega).sin();
    let deps_arcsec = 9.20 * omega.cos() + 0.57 * (2.0 * l_sun).cos() + 0.10 * (2.0 * l_moon).cos()
        - 0.09 * (2.0 * omega).cos();
    let eps0 = 23.439_291_1 - 0.013_004_2 * t - 1.64e-7 * t * t + 5.04e-7 * t * t * t;
    (dpsi_arcsec / 3600.0, eps0 + deps_arcsec / 3600.0)
}

/// Greenwich apparent sidereal time in hours: GMST plus the equation of the equinoxes.
pub fn gast_hours(jd: f64) -> f64 {
    let (dpsi, eps) = nutation(jd);
    wrap_24(gmst_hours(jd) + dpsi * eps.to_radians().cos() / 15.0)
}

/// Local apparent sidereal time in hours at `longitude` degrees (east positive).
pub fn local_sidereal_time(t: SimTime, longitude: f64) -> f64 {
    wrap_24(gast_hours(julian_date(t)) + longitude / 15.0)
}

/// Hour angle in hours, `−12 ≤ H < 12` (negative east of the meridian).
pub fn hour_angle(lst: f64, ra: f64) -> f64 {
    wrap_12(lst - ra)
}

/// A horizontal (alt-azimuth) direction in degrees.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct AltAz {
    pub altitude: f64,
    /// From north through east, `0 ≤ az < 360`.
    pub azimuth: f64,
}

/// Hour angle (hours) and declination (degrees) to altitude/azimuth at `latitude` degrees.
pub fn equatorial_to_horizontal(ha: f64, dec: f64, latitude: f64) -> AltAz {
    let (h, d, phi) = (
        (ha * 15.0).to_radians(),
        dec.to_radians(),
        latitude.to_radians(),
    );
    let sin_alt = (phi.sin() * d.sin() + phi.cos() * d.cos() * h.cos()).clamp(-1.0, 1.0);
    let y = -d.cos() * h.sin();
    let x = d.sin() * phi.cos() - d.cos() * phi.sin() * h.cos();
    AltAz {
        altitude: sin_alt.asin().to_degrees(),
        azimuth: wrap_360(y.atan2(x).to_degrees()),
    }
}

/// Altitude/azimuth (degrees) to hour angle (hours, `−12 ≤ H < 12`) and declination
/// (degrees) at `latitude` degrees.
pub fn horizontal_to_equatorial(altitude: f64, azimuth: f64, latitude: f64) -> (f64, f64) {
    let (a, z, phi) = (
        altitude.to_radians(),
        azimuth.to_radians(),
        latitude.to_radians(),
    );
    let sin_dec = (phi.sin() * a.sin() + phi.cos() * a.cos() * z.cos()).clamp(-1.0, 1.0);
    let y = -z.sin() * a.cos();
    let x = a.sin() * phi.cos() - a.cos() * phi.sin() * z.cos();
    (
        wrap_12(y.atan2(x).to_degrees() / 15.0),
        sin_dec.asin().to_degrees(),
    )
}

/// Right ascension/declination to altitude/azimuth for a given local sidereal time.
pub fn radec_to_altaz(ra: f64, dec: f64, lst: f64, latitude: f64) -> AltAz {
    equatorial_to_horizontal(hour_angle(lst, ra), dec, latitude)
}

/// Altitude/azimuth to right ascension (hours, `0 ≤ RA < 24`) and declination.
pub fn altaz_to_radec(altitude: f64, azimuth: f64, lst: f64, latitude: f64) -> (f64, f64) {
    let (ha, dec) = horizontal_to_equatorial(altitude, azimuth, latitude);
    (wrap_24(lst - ha), dec)
}

/// Great-circle separation of two equatorial positions (RA in hours, Dec in degrees), degrees.
pub fn angular_separation(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
    let (a1, d1, a2, d2) = (
        (ra1 * 15.0).to_radians(),
        dec1.to_radians(),
        (ra2 * 15.0).to_radians(),
        dec2.to_radians(),
    );
    // Haversine form: well conditioned for the small separations pointing checks care about.
    let h = ((d2 - d1) / 2.0).sin().powi(2) + d1.cos() * d2.cos() * ((a2 - a1) / 2.0).sin().powi(2);
    (2.0 * h.sqrt().clamp(0.0, 1.0).asin()).to_degrees()
}

/// The German-mount pointing state ASCOM expects for a target at hour angle `ha` (hours):
/// objects east of the meridian (`−12 ≤ H < 0`) are observed from the west side of the pier
/// ([`PierSide::West`], "through the pole" is not part of this rule), objects west of it
/// (`0 ≤ H < 12`) from the east side. ConformU checks that H = −9 reports like −3 and +9
/// like +3, which this rule does.
pub fn destination_side_of_pier(ha: f64) -> PierSide {
    if wrap_12(ha) < 0.0 {
        PierSide::West
    } else {
        PierSide::East
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn hms(h: f64, m: f64, s: f64) -> f64 {
        h + m / 60.0 + s / 3600.0
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> SimTime {
        SimTime::from_utc(
            Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
                .single()
                .expect("valid date"),
        )
    }

    #[test]
    fn julian_date_of_known_instants() {
        assert_eq!(julian_date(SimTime(0.0)), JD_UNIX_EPOCH);
        assert!((julian_date(at(2000, 1, 1, 12, 0, 0)) - JD_J2000).abs() < 1e-9);
        // Meeus example 7.a: 1957 October 4.81 = JD 2436116.31.
        let sputnik = at(1957, 10, 4, 19, 26, 24);
        assert!((julian_date(sputnik) - 2_436_116.31).abs() < 1e-6);
    }

    #[test]
    fn gmst_matches_meeus_examples() {
        // Example 12.a: 1987 April 10, 0h UT → mean sidereal time 13h10m46.3668s.
        let gmst = gmst_hours(julian_date(at(1987, 4, 10, 0, 0, 0)));
        assert!(
            (gmst - hms(13.0, 10.0, 46.3668)).abs() * 3600.0 < 0.001,
            "{gmst}"
        );
        // Example 12.b: 1987 April 10, 19h21m00s UT → 8h34m57.0896s.
        let gmst = gmst_hours(julian_date(at(1987, 4, 10, 19, 21, 0)));
        assert!(
            (gmst - hms(8.0, 34.0, 57.0896)).abs() * 3600.0 < 0.001,
            "{gmst}"
        );
    }

    #[test]
    fn gast_matches_meeus_apparent_sidereal_time() {
        // Example 12.a: apparent sidereal time 13h10m46.1351s (nutation −3.788″, ε 23°26′36.85″).
        let gast = gast_hours(julian_date(at(1987, 4, 10, 0, 0, 0)));
        assert!(
            (gast - hms(13.0, 10.0, 46.1351)).abs() * 3600.0 < 0.05,
            "{gast}"
        );
    }

    #[test]
    fn sidereal_time_agrees_with_the_conformu_formula() {
        // ConformU: GMST = 18.697374558 + 24.065709824419081 × (JD − 2451545) (+ longitude / 15).
        for (t, lon) in [
            (at(2026, 3, 20, 22, 0, 0), -0.29444),
            (at(2031, 8, 1, 3, 17, 9), 151.2),
        ] {
            let jd = julian_date(t);
            let conformu =
                wrap_24(18.697_374_558 + 24.065_709_824_419_08 * (jd - JD_J2000) + lon / 15.0);
            let ours = local_sidereal_time(t, lon);
            assert!(
                wrap_12(ours - conformu).abs() * 3600.0 < 2.0,
                "{ours} vs {conformu}"
            );
        }
    }

    #[test]
    fn horizontal_coordinates_match_meeus_example_13b() {
        // Venus from the US Naval Observatory, 1987 April 10, 19h21m00s UT: H = 64.352133°,
        // δ = −6°43′11.61″, φ = +38°55′17″ → h = 15.1249°, A = 68.0337° west of south.
        let lat = 38.0 + 55.0 / 60.0 + 17.0 / 3600.0;
        let dec = -(6.0 + 43.0 / 60.0 + 11.61 / 3600.0);
        let hz = equatorial_to_horizontal(64.352_133 / 15.0, dec, lat);
        assert!((hz.altitude - 15.1249).abs() < 1e-3, "{hz:?}");
        assert!((hz.azimuth - (68.0337 + 180.0)).abs() < 1e-3, "{hz:?}");
        let (ha, d) = horizontal_to_equatorial(hz.altitude, hz.azimuth, lat);
        assert!((ha * 15.0 - 64.352_133).abs() < 1e-6 && (d - dec).abs() < 1e-6);
    }

    #[test]
    fn meridian_and_pole_land_where_expected() {
        let lat = 51.07861;
        // The celestial pole stands due north at the latitude's altitude.
        let pole = equatorial_to_horizontal(3.0, 90.0, lat);
        assert!((pole.altitude - lat).abs() < 1e-9);
        // The equator on the meridian is due south at 90° − latitude.
        let south = equatorial_to_horizontal(0.0, 0.0, lat);
        assert!(
            (south.altitude - (90.0 - lat)).abs() < 1e-9 && (south.azimuth - 180.0).abs() < 1e-9
        );
        // Six hours west of the meridian on the equator: setting due west.
        let west = equatorial_to_horizontal(6.0, 0.0, lat);
        assert!(west.altitude.abs() < 1e-9 && (west.azimuth - 270.0).abs() < 1e-9);
    }

    #[test]
    fn conversions_round_trip_over_the_sky() {
        for lat in [-33.9, 0.0, 51.07861, 78.2] {
            for ha10 in -119..120 {
                for dec in [-80.0, -30.0, 0.0, 12.5, 45.0, 85.0] {
                    let ha = f64::from(ha10) / 10.0;
                    let hz = equatorial_to_horizontal(ha, dec, lat);
                    let (ha2, dec2) = horizontal_to_equatorial(hz.altitude, hz.azimuth, lat);
                    assert!(
                        (wrap_12(ha2 - ha)).abs() * 15.0 < 1e-7,
                        "ha {ha} dec {dec} lat {lat}: {ha2}"
                    );
                    assert!(
                        (dec2 - dec).abs() < 1e-7,
                        "ha {ha} dec {dec} lat {lat}: {dec2}"
                    );
                }
            }
        }
    }

    #[test]
    fn pointing_state_follows_the_hour_angle() {
        assert_eq!(destination_side_of_pier(-3.0), PierSide::West);
        assert_eq!(destination_side_of_pier(-9.0), PierSide::West);
        assert_eq!(destination_side_of_pier(3.0), PierSide::East);
        assert_eq!(destination_side_of_pier(9.0), PierSide::East);
        assert_eq!(destination_side_of_pier(0.0), PierSide::East);
        assert_eq!(
            destination_side_of_pier(23.0),
            PierSide::West,
            "23 h is 1 h east"
        );
    }

    #[test]
    fn wrapping_stays_in_range() {
        assert_eq!(wrap_360(-1e-18), 0.0);
        assert_eq!(wrap_360(720.5), 0.5);
        assert_eq!(wrap_180(190.0), -170.0);
        assert_eq!(wrap_24(-1.0), 23.0);
        assert_eq!(wrap_12(13.0), -11.0);
        assert_eq!(hour_angle(1.0, 23.0), 2.0);
    }

    #[test]
    fn separation_of_simple_cases() {
        assert!((angular_separation(0.0, 0.0, 6.0, 0.0) - 90.0).abs() < 1e-9);
        assert!((angular_separation(5.0, 89.0, 17.0, 89.0) - 2.0).abs() < 1e-9);
        assert!(angular_separation(3.3, -20.0, 3.3, -20.0) < 1e-12);
    }
}
