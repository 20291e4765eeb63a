//! badger-relay: ScrapeBadger's real-time tweet events, delivered to Slack, Discord and
//! HTTP webhooks, durably.
//!
//! # The data flow
//!
//! ```text
//!  ScrapeBadger stream ──► source ──► event ──► routes ──► intake ──► outbox ──► delivery ──► target
//!  (WebSocket)            (source.rs) (event.rs) (routes.rs) (intake.rs) (outbox/)  (delivery.rs) (target/)
//!  POST /ingest ──────────────────────────────────────────────┘
//! ```
//!
//! 1. [`source`] keeps one WebSocket connection alive (watchdog, backoff with full
//!    jitter, auth errors survived) and turns text frames into [`event::Event`]s: the
//!    raw bytes plus the few fields routing reads, parsed once.
//! 2. [`routes`] decides which targets an event goes to (file order, `stop`, one delivery
//!    per target).
//! 3. [`intake`] hands the routed event to the [`outbox`] committer, which writes each
//!    event's deliveries and dedupe marks in one atomic batch and makes a whole group of
//!    events durable with one fsync (group commit) before any attempt.
//! 4. [`delivery`] runs one worker per target: it takes its queue in order (handed over
//!    in memory by the committer after the fsync, or read from the outbox after a restart
//!    or when it fell behind), honours `concurrency` and the [`rate_limit`], and asks [`retry`] (a pure
//!    function) what each answer means: delivered (the record is removed), retry (the
//!    schedule is written back to disk) or dead letter.
//! 5. [`target`] renders the request: the event bytes as received for `http` (Standard
//!    Webhooks headers), Block Kit for `slack`, an embed for `discord`.
//!
//! [`config`] reads and validates the TOML once at start-up; [`app`] wires the parts
//! together and drains them on shutdown; [`telemetry`] holds logging and metrics.

pub mod app;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod intake;
pub mod outbox;
pub mod rate_limit;
pub mod retry;
pub mod routes;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod source;
pub mod target;
pub mod telemetry;
