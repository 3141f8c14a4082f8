//! Big Skies core: what every coordinator shares.
//!
//! * [`envelope`]: the message envelope, unique ids, bare-or-enveloped request decoding.
//! * [`topics`]: every topic, built from one configurable root; MQTT filter matching.
//! * [`error`]: the edge error vocabulary and its Go-shaped reply.
//! * [`health`]: statuses, checkers, aggregation, the Go health payload.
//! * [`auth`]: the authentication seam: access per operation, principals, the authenticator trait.
//! * [`bus`]: the MQTT bus (rumqttc): one handle, one event-loop task, resubscribe, backoff.
//! * [`config`]: configuration rows in PostgreSQL with typed getters; the migration set.
//! * [`credentials`]: `.pgpass`, the bootstrap credentials message, `DATABASE_URL`.
//! * [`runtime`]: the coordinator runtime: decode, dispatch, reply, health, reload, drain.
pub mod auth;
pub mod bus;
pub mod config;
pub mod credentials;
pub mod envelope;
pub mod error;
pub mod health;
pub mod lanes;
pub mod replay;
pub mod runtime;
pub mod topics;
