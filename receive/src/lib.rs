//! Session events from a privileged-access gateway, onto the event bus.
//!
//! - [`http`]: the receiver. A gateway `POST`s session events, in any
//!   format trailhound reads (Teleport audit lines, asciinema casts, Cowrie
//!   JSON, trailhound's session JSON lines; gzip or not), to
//!   `/v1/sessions` with a bearer token. The body is parsed by the same
//!   code as files, and the answer is `200` only once the broker has
//!   acknowledged every event (and the dead letters) of the request:
//!   `401` for a missing or wrong token, `413` for a body over the limit,
//!   `422` when nothing in it could be read (the reasons are on the
//!   dead-letter topic), `503` with `Retry-After` when the bus did not
//!   acknowledge in time or too many requests are in flight, so the
//!   gateway's retry loses nothing.
//! - [`downstream`]: where accepted events go: [`BusDownstream`] (the
//!   event and dead-letter topics), or anything implementing
//!   [`Downstream`].

pub mod downstream;
pub mod error;
pub mod http;

pub use downstream::{BusDownstream, Downstream};
pub use error::ReceiveError;
pub use http::{Body, Receiver, ReceiverSettings, ReceiverStats, Verdict, read_body};
