//! sse-gateway: fan messages out to browsers over Server-Sent Events.
//!
//! The data flow, one module per step:
//! - [`channel`]: a validated channel name;
//! - [`event`]: an event (id, type, data) and its SSE wire frame, encoded once;
//! - [`hub`]: the registry of channels, the one [`hub::Hub::publish`] path every source uses,
//!   and subscribe with resume;
//! - [`broadcaster`]: each channel's fan-out task (where a slow subscriber is dropped) and the
//!   [`history`] it shares with publishers;
//! - [`subscriber`]: a subscriber's bounded outbox and its `text/event-stream` body;
//! - [`http`]: the thin HTTP adapter (actix-web, and event streams served on the bare
//!   connection); [`server`]: wiring and shutdown.
#![deny(unsafe_code)]
#![warn(
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod amqp;
pub mod broadcaster;
pub mod channel;
pub mod config;
pub mod event;
pub mod history;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod server;
pub mod sse_parser;
pub mod subscriber;
