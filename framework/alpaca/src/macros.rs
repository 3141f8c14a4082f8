//! The one declaration per device type.
//!
//! `alpaca_interface!` takes a table of members and generates, from that single list:
//!
//! 1. the `async_trait` trait, one `async fn` per member with a default body returning
//!    `NotImplemented` (0x400) naming the ASCOM member;
//! 2. a static member table (`&[MemberInfo]`) for tests and the conformance checker;
//! 3. the server dispatch `async fn(&dyn Trait, Verb, &str, &Params) -> Dispatch`, which parses
//!    every parameter (exact PUT casing, see [`Params`](crate::wire::Params)) before calling
//!    the device;
//! 4. the client: the trait implemented for the remote handle (transport errors folded into an
//!    [`AlpacaError`](crate::AlpacaError), see [`ClientError::into_alpaca`](crate::client::ClientError::into_alpaca)),
//!    plus the same methods on [`Checked`](crate::client::Checked) returning the full
//!    [`ClientError`](crate::client::ClientError).
//!
//! A member line reads
//!
//! ```text
//! /// doc
//! GET  AxisRates fn axis_rates(Axis axis: TelescopeAxis) -> Vec<AxisRate>;
//! PUT  Tracking  fn set_tracking(Tracking tracking: bool) -> ();
//! ```
//!
//! verb, ASCOM member name (its lower case is the URL segment), Rust method, then each
//! parameter as `WireName rust_name: Type`, and the `Value` type (`()` = no `Value`).
//! Parameter types implement [`ParamValue`](crate::wire::ParamValue), value types
//! [`WireValue`](crate::wire::WireValue).
//!
//! Two forms: `common` (the `Device` supertrait; its client impl is a blanket impl over
//! [`AsRemote`](crate::client::AsRemote)) and `device` (one device type with its own remote
//! handle type).

/// Maps the table's verb keyword to [`Verb`](crate::types::Verb).
macro_rules! alpaca_verb {
    (GET) => {
        $crate::types::Verb::Get
    };
    (PUT) => {
        $crate::types::Verb::Put
    };
}

macro_rules! alpaca_interface {
    // ---- the Device supertrait ------------------------------------------------------------
    (
        common
        $(#[$tmeta:meta])*
        trait $Trait:ident;
        table $TABLE:ident;
        dispatch $dispatch:ident;
        members { $($members:tt)* }
    ) => {
        alpaca_interface!(@trait [$(#[$tmeta])*] $Trait [Send + Sync + 'static] $($members)*);
        alpaca_interface!(@table $TABLE $($members)*);
        alpaca_interface!(@dispatch $Trait $dispatch $($members)*);
        alpaca_interface!(@client_common $Trait $($members)*);
    };

    // ---- one device type ------------------------------------------------------------------
    (
        device
        $(#[$tmeta:meta])*
        trait $Trait:ident;
        device_type $Type:ident;
        remote $Remote:ident;
        table $TABLE:ident;
        dispatch $dispatch:ident;
        members { $($members:tt)* }
    ) => {
        alpaca_interface!(@trait [$(#[$tmeta])*] $Trait [$crate::devices::Device] $($members)*);
        alpaca_interface!(@table $TABLE $($members)*);
        alpaca_interface!(@dispatch $Trait $dispatch $($members)*);
        alpaca_interface!(@client_device $Trait $Type $Remote $($members)*);
    };

    (@trait [$(#[$tmeta:meta])*] $Trait:ident [$($sup:tt)+]
        $(
            $(#[$mmeta:meta])*
            $verb:ident $Name:ident fn $method:ident ( $( $Param:ident $arg:ident : $pty:ty ),* ) -> $ret:ty ;
        )*
    ) => {
        $(#[$tmeta])*
        #[$crate::async_trait]
        pub trait $Trait: $($sup)+ {
            $(
                $(#[$mmeta])*
                #[doc = concat!("\n\n`", stringify!($verb), " ", stringify!($Name), "`")]
                async fn $method(&self $(, $arg: $pty)*) -> $crate::AlpacaResult<$ret> {
                    $( let _ = $arg; )*
                    Err($crate::AlpacaError::not_implemented(stringify!($Name)))
                }
            )*
        }
    };

    (@table $TABLE:ident
        $(
            $(#[$mmeta:meta])*
            $verb:ident $Name:ident fn $method:ident ( $( $Param:ident $arg:ident : $pty:ty ),* ) -> $ret:ty ;
        )*
    ) => {
        #[doc = concat!("Every member of the [`", stringify!($TABLE), "`] interface, in declaration order.")]
        pub static $TABLE: &[$crate::wire::MemberInfo] = &[
            $(
                $crate::wire::MemberInfo {
                    name: stringify!($Name),
                    verb: alpaca_verb!($verb),
                    method: stringify!($method),
                    params: &[
                        $( $crate::wire::ParamInfo {
                            name: stringify!($Param),
                            kind: <$pty as $crate::wire::ParamValue>::KIND,
                        } ),*
                    ],
                    returns: <$ret as $crate::wire::WireValue>::KIND,
                }
            ),*
        ];
    };

    (@dispatch $Trait:ident $dispatch:ident
        $(
            $(#[$mmeta:meta])*
            $verb:ident $Name:ident fn $method:ident ( $( $Param:ident $arg:ident : $pty:ty ),* ) -> $ret:ty ;
        )*
    ) => {
        /// Server dispatch generated from the member table: parse every parameter, then call.
        pub async fn $dispatch(
            dev: &dyn $Trait,
            verb: $crate::types::Verb,
            member: &str,
            params: &$crate::wire::Params,
        ) -> $crate::wire::Dispatch {
            #[allow(unused_imports)]
            use $crate::wire::{Dispatch, ParamError, Reply};
            let _ = params;
            $(
                if verb == alpaca_verb!($verb) && $crate::wire::path_matches(member, stringify!($Name)) {
                    $(
                        let $arg: $pty = match params.parse::<$pty>(stringify!($Param)) {
                            Ok(v) => v,
                            Err(ParamError::Invalid(e)) => return Dispatch::Reply(Reply::error::<$ret>(e)),
                            Err(other) => return Dispatch::BadRequest(other.to_string()),
                        };
                    )*
                    return Dispatch::Reply(Reply::from_result(dev.$method($($arg),*).await));
                }
            )*
            Dispatch::NoMember
        }
    };

    (@client_common $Trait:ident
        $(
            $(#[$mmeta:meta])*
            $verb:ident $Name:ident fn $method:ident ( $( $Param:ident $arg:ident : $pty:ty ),* ) -> $ret:ty ;
        )*
    ) => {
        #[$crate::async_trait]
        impl<T: $crate::client::AsRemote> $Trait for T {
            $(
                async fn $method(&self $(, $arg: $pty)*) -> $crate::AlpacaResult<$ret> {
                    $crate::client::Checked::new(self).$method($($arg),*).await.map_err($crate::client::ClientError::into_alpaca)
                }
            )*
        }

        impl<T: $crate::client::AsRemote> $crate::client::Checked<'_, T> {
            $(
                $(#[$mmeta])*
                pub async fn $method(&self $(, $arg: $pty)*) -> Result<$ret, $crate::client::ClientError> {
                    self.device()
                        .call::<$ret>(
                            alpaca_verb!($verb),
                            stringify!($Name),
                            vec![$( (stringify!($Param), $crate::wire::ParamValue::format_param(&$arg)) ),*],
                        )
                        .await
                }
            )*
        }
    };

    (@client_device $Trait:ident $Type:ident $Remote:ident
        $(
            $(#[$mmeta:meta])*
            $verb:ident $Name:ident fn $method:ident ( $( $Param:ident $arg:ident : $pty:ty ),* ) -> $ret:ty ;
        )*
    ) => {
        #[doc = concat!("A remote ", stringify!($Type), " reached over HTTP; implements [`", stringify!($Trait), "`].")]
        #[derive(Clone, Debug)]
        pub struct $Remote($crate::client::RemoteDevice);

        impl $Remote {
            #[doc = concat!("The ", stringify!($Type), " numbered `number` on the server behind `client`.")]
            pub fn new(client: $crate::client::AlpacaClient, number: u32) -> Self {
                Self($crate::client::RemoteDevice::new(client, $crate::types::DeviceType::$Type, number))
            }

            /// The same members returning the full [`ClientError`](crate::client::ClientError).
            pub fn checked(&self) -> $crate::client::Checked<'_, Self> {
                $crate::client::Checked::new(self)
            }
        }

        impl $crate::client::AsRemote for $Remote {
            fn remote(&self) -> &$crate::client::RemoteDevice {
                &self.0
            }
        }

        impl $crate::client::sealed::Sealed for $Remote {}

        #[$crate::async_trait]
        impl $Trait for $Remote {
            $(
                async fn $method(&self $(, $arg: $pty)*) -> $crate::AlpacaResult<$ret> {
                    self.checked().$method($($arg),*).await.map_err($crate::client::ClientError::into_alpaca)
                }
            )*
        }

        impl $crate::client::Checked<'_, $Remote> {
            $(
                $(#[$mmeta])*
                pub async fn $method(&self $(, $arg: $pty)*) -> Result<$ret, $crate::client::ClientError> {
                    self.device()
                        .call::<$ret>(
                            alpaca_verb!($verb),
                            stringify!($Name),
                            vec![$( (stringify!($Param), $crate::wire::ParamValue::format_param(&$arg)) ),*],
                        )
                        .await
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use crate::devices::Device;
    use crate::types::{DeviceType, GuideDirection, Verb};
    use crate::wire::{Dispatch, ParamInfo, ParamKind, Params, ReplyValue, ValueKind};
    use crate::{AlpacaResult, ErrorCode};

    alpaca_interface! {
        device
        /// A tiny interface that exists only to test the macro.
        trait Widget;
        device_type Focuser;
        remote RemoteWidget;
        table WIDGET_MEMBERS;
        dispatch dispatch_widget;
        members {
            /// The knob.
            GET Level fn level() -> i32;
            PUT Level fn set_level(Level level: i32) -> ();
            PUT Nudge fn nudge(Direction direction: GuideDirection, Amount amount: f64) -> ();
            GET Echo fn echo(Text text: String) -> String;
        }
    }

    #[derive(Default)]
    struct Knob {
        level: Mutex<i32>,
    }

    #[crate::async_trait]
    impl Device for Knob {}

    #[crate::async_trait]
    impl Widget for Knob {
        async fn level(&self) -> AlpacaResult<i32> {
            Ok(*self.level.lock().unwrap_or_else(|p| p.into_inner()))
        }
        async fn set_level(&self, level: i32) -> AlpacaResult<()> {
            *self.level.lock().unwrap_or_else(|p| p.into_inner()) = level;
            Ok(())
        }
    }

    fn form(pairs: &[(&str, &str)]) -> Params {
        Params::form(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn query(pairs: &[(&str, &str)]) -> Params {
        Params::query(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn the_table_lists_every_member_with_wire_names_and_kinds() {
        let rows: Vec<_> = WIDGET_MEMBERS
            .iter()
            .map(|m| (m.name, m.verb, m.method, m.returns))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("Level", Verb::Get, "level", ValueKind::Int),
                ("Level", Verb::Put, "set_level", ValueKind::Nothing),
                ("Nudge", Verb::Put, "nudge", ValueKind::Nothing),
                ("Echo", Verb::Get, "echo", ValueKind::String),
            ]
        );
        assert_eq!(
            WIDGET_MEMBERS[2].params,
            &[
                ParamInfo {
                    name: "Direction",
                    kind: ParamKind::Enum("GuideDirection")
                },
                ParamInfo {
                    name: "Amount",
                    kind: ParamKind::Double
                },
            ]
        );
        assert_eq!(WIDGET_MEMBERS[3].path(), "echo");
    }

    #[tokio::test]
    async fn default_bodies_say_not_implemented_with_the_member_name() {
        let err = Knob::default()
            .echo("hi".into())
            .await
            .expect_err("not implemented by Knob");
        assert_eq!(err.code, ErrorCode::NOT_IMPLEMENTED);
        assert!(err.message.contains("Echo"), "{}", err.message);
        let err = Knob::default()
            .name()
            .await
            .expect_err("Device defaults too");
        assert!(err.message.contains("Name"));
    }

    #[tokio::test]
    async fn dispatch_parses_then_calls_the_device() {
        let knob = Knob::default();
        let dev: &dyn Widget = &knob;
        match dispatch_widget(dev, Verb::Put, "level", &form(&[("Level", "5")])).await {
            Dispatch::Reply(r) => assert_eq!((r.value, r.error), (None, None)),
            other => panic!("unexpected {other:?}"),
        }
        match dispatch_widget(dev, Verb::Get, "level", &query(&[])).await {
            Dispatch::Reply(r) => assert_eq!(r.value, Some(ReplyValue::Json(5.into()))),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn dispatch_separates_bad_requests_from_device_errors() {
        let knob = Knob::default();
        let dev: &dyn Widget = &knob;
        // Wrong PUT casing = missing = 400; nothing reaches the device.
        assert!(matches!(
            dispatch_widget(dev, Verb::Put, "level", &form(&[("level", "9")])).await,
            Dispatch::BadRequest(_)
        ));
        assert_eq!(*knob.level.lock().unwrap_or_else(|p| p.into_inner()), 0);
        // Unparseable number = 400.
        let bad = form(&[("Direction", "1"), ("Amount", "lots")]);
        assert!(matches!(
            dispatch_widget(dev, Verb::Put, "nudge", &bad).await,
            Dispatch::BadRequest(_)
        ));
        // Parseable but illegal enum = 200 + InvalidValue.
        let illegal = form(&[("Direction", "9"), ("Amount", "1")]);
        match dispatch_widget(dev, Verb::Put, "nudge", &illegal).await {
            Dispatch::Reply(r) => {
                assert_eq!(r.error.map(|e| e.code), Some(ErrorCode::INVALID_VALUE))
            }
            other => panic!("unexpected {other:?}"),
        }
        // Unimplemented GET: NotImplemented with the type default as Value.
        match dispatch_widget(dev, Verb::Get, "echo", &query(&[("TEXT", "x")])).await {
            Dispatch::Reply(r) => {
                assert_eq!(r.error.map(|e| e.code), Some(ErrorCode::NOT_IMPLEMENTED));
                assert_eq!(r.value, Some(ReplyValue::Json("".into())));
            }
            other => panic!("unexpected {other:?}"),
        }
        // Upper-case path, wrong verb, unknown name: not this table's member.
        assert!(matches!(
            dispatch_widget(dev, Verb::Get, "Level", &query(&[])).await,
            Dispatch::NoMember
        ));
        assert!(matches!(
            dispatch_widget(dev, Verb::Get, "nudge", &query(&[])).await,
            Dispatch::NoMember
        ));
        assert!(matches!(
            dispatch_widget(dev, Verb::Get, "volume", &query(&[])).await,
            Dispatch::NoMember
        ));
    }

    #[test]
    fn the_remote_handle_implements_the_same_trait() {
        fn is_widget<T: Widget + Device>() {}
        is_widget::<RemoteWidget>();
        let client =
            crate::client::AlpacaClient::build("http://127.0.0.1:9").expect("client builds");
        let remote = RemoteWidget::new(client, 2);
        assert_eq!(remote.checked().device().device_type(), DeviceType::Focuser);
        assert_eq!(remote.checked().device().number(), 2);
    }
}
