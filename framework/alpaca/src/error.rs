//! ASCOM errors as they travel inside an HTTP 200 reply (`ErrorNumber` / `ErrorMessage`).
//!
//! Transport problems (HTTP 400/500, I/O, bad JSON) are a different thing and live in the
//! client's own error type; an [`AlpacaError`] is always "the device understood you and said no".

use std::fmt;

/// An Alpaca error number (PROTOCOL.md §1.8). Reserved numbers have names; anything in
/// `0x500..=0xFFF` is a driver-specific error.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    pub const NOT_IMPLEMENTED: Self = Self(0x400);
    pub const INVALID_VALUE: Self = Self(0x401);
    pub const VALUE_NOT_SET: Self = Self(0x402);
    pub const NOT_CONNECTED: Self = Self(0x407);
    pub const INVALID_WHILE_PARKED: Self = Self(0x408);
    pub const INVALID_WHILE_SLAVED: Self = Self(0x409);
    pub const INVALID_OPERATION: Self = Self(0x40B);
    pub const ACTION_NOT_IMPLEMENTED: Self = Self(0x40C);
    pub const OPERATION_CANCELLED: Self = Self(0x40E);
    pub const UNSPECIFIED: Self = Self(0x4FF);
    /// First driver-specific number.
    pub const DRIVER_BASE: Self = Self(0x500);
    /// Last driver-specific number.
    pub const DRIVER_MAX: Self = Self(0xFFF);

    /// The reserved name of this number, if it has one.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::NOT_IMPLEMENTED => "NotImplemented",
            Self::INVALID_VALUE => "InvalidValue",
            Self::VALUE_NOT_SET => "ValueNotSet",
            Self::NOT_CONNECTED => "NotConnected",
            Self::INVALID_WHILE_PARKED => "InvalidWhileParked",
            Self::INVALID_WHILE_SLAVED => "InvalidWhileSlaved",
            Self::INVALID_OPERATION => "InvalidOperation",
            Self::ACTION_NOT_IMPLEMENTED => "ActionNotImplemented",
            Self::OPERATION_CANCELLED => "OperationCancelled",
            Self::UNSPECIFIED => "UnspecifiedError",
            _ => return None,
        })
    }

    pub fn is_driver_specific(self) -> bool {
        (Self::DRIVER_BASE.0..=Self::DRIVER_MAX.0).contains(&self.0)
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}(0x{:03X})", self.0),
            None => write!(f, "ErrorCode(0x{:03X})", self.0),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// An ASCOM error: a number and a human message.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("ASCOM error {code}: {message}")]
pub struct AlpacaError {
    pub code: ErrorCode,
    pub message: String,
}

impl fmt::Debug for AlpacaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AlpacaError({:?}, {:?})", self.code, self.message)
    }
}

impl AlpacaError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
    pub fn not_implemented(what: impl fmt::Display) -> Self {
        Self::new(
            ErrorCode::NOT_IMPLEMENTED,
            format!("{what} is not implemented"),
        )
    }
    pub fn invalid_value(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::INVALID_VALUE, message)
    }
    pub fn value_not_set(what: impl fmt::Display) -> Self {
        Self::new(ErrorCode::VALUE_NOT_SET, format!("{what} has not been set"))
    }
    pub fn not_connected() -> Self {
        Self::new(ErrorCode::NOT_CONNECTED, "the device is not connected")
    }
    pub fn parked() -> Self {
        Self::new(
            ErrorCode::INVALID_WHILE_PARKED,
            "not allowed while the mount is parked",
        )
    }
    pub fn slaved() -> Self {
        Self::new(
            ErrorCode::INVALID_WHILE_SLAVED,
            "not allowed while the dome is slaved",
        )
    }
    pub fn invalid_operation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::INVALID_OPERATION, message)
    }
    pub fn action_not_implemented(action: &str) -> Self {
        Self::new(
            ErrorCode::ACTION_NOT_IMPLEMENTED,
            format!("action {action:?} is not implemented"),
        )
    }
    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::OPERATION_CANCELLED, message)
    }
    pub fn unspecified(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::UNSPECIFIED, message)
    }
    /// A driver-specific error; `offset` is added to 0x500 and capped at 0xFFF.
    pub fn driver(offset: u16, message: impl Into<String>) -> Self {
        let n = ErrorCode::DRIVER_BASE
            .0
            .saturating_add(offset)
            .min(ErrorCode::DRIVER_MAX.0);
        Self::new(ErrorCode(n), message)
    }
}

/// What every device member returns.
pub type AlpacaResult<T> = Result<T, AlpacaError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_numbers_match_the_protocol_table() {
        assert_eq!(ErrorCode::OPERATION_CANCELLED.0, 0x40E);
        assert_eq!(ErrorCode::INVALID_OPERATION.0, 0x40B);
        assert_eq!(ErrorCode::NOT_CONNECTED.0, 1031);
        assert_eq!(
            ErrorCode(0x40D).name(),
            None,
            "0x40D is not an Alpaca error"
        );
    }

    #[test]
    fn driver_errors_stay_in_their_range() {
        assert_eq!(AlpacaError::driver(0, "x").code, ErrorCode(0x500));
        assert_eq!(AlpacaError::driver(u16::MAX, "x").code, ErrorCode(0xFFF));
        assert!(AlpacaError::driver(3, "x").code.is_driver_specific());
        assert!(!ErrorCode::INVALID_VALUE.is_driver_specific());
    }
}
