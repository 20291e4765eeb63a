//! badger-relay: ScrapeBadger's real-time tweet events, delivered to Slack, Discord,
//! Telegram, Microsoft Teams and HTTP webhooks, durably.
//!
//! # The data flow
//!
//! ```text
//!  ScrapeBadger stream ──► source ──► event ──► routes ──► intake ──► outbox ──► delivery ──► target
//!  (WebSocket)            (source.rs) (event.rs) (routes.rs) (intake.rs) (outbox/)  (delivery.rs) (target/)
//!  POST /ingest ──────────────────────────────────────────────┘
//! ```
//!
//! 1. `source` keeps one WebSocket connection alive (watchdog, backoff with full
//!    jitter, auth errors survived) and turns text frames into [`event::Event`]s: the
//!    raw bytes plus the few fields routing reads, parsed once.
//! 2. [`routes`] decides which targets an event goes to (file order, `stop`, one delivery
//!    per target).
//! 3. `intake` works out each target's dedupe key and hands the routed event to the
//!    outbox's inbox; whatever waits there is stored as one group.
//! 4. **The seam**: `outbox` is an interface at the level the workers think at
//!    (`enqueue` a group, durable when it returns; an ordered `queue` of deliveries per
//!    target; `complete`, `retry_at` or `dead_letter` one delivery; an `Admin` side for
//!    the `outbox` commands). The embedded backend is `outbox::sled`: one atomic batch
//!    and one fsync per group (group commit), deliveries handed to workers in memory
//!    after the fsync or read back from disk after a restart. An in-memory backend lets
//!    the worker be tested under paused time; a replicated backend plugs in here.
//! 5. `delivery` runs one worker per target against that seam: `concurrency` and the
//!    `rate_limit` are honoured, [`target`] says what each answer means, `retry::next`
//!    (a pure function) when to try again, and `failure` keeps why, typed.
//! 6. [`target`] renders the request and reads the answer, one file per platform: the
//!    event bytes as received for `http` (Standard Webhooks headers), Block Kit for
//!    `slack`, an embed for `discord`, Telegram HTML for `telegram`, an Adaptive Card
//!    for `teams`; a `nats` target publishes the event bytes into JetStream instead. A
//!    target's `template` or `body_template` was compiled once by `jinja` (MiniJinja,
//!    every value escaped for the platform).
//!
//! [`config`] reads and validates the TOML once at start-up; [`app`] wires the parts
//! together and drains them on shutdown; [`telemetry`] holds logging and metrics;
//! `server` serves `/healthz`, `/readyz`, `/metrics` and `/ingest`.

// The binary's surface: `main` runs these.
pub mod allocator;
pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
#[doc(hidden)]
pub mod fuzzing;
pub mod shutdown;
pub mod telemetry;
// What the bench and the payload tests drive directly.
pub mod event;
pub mod routes;
pub mod target;

// Everything else is the pipeline's inside.
mod delivery;
mod escape;
mod failure;
mod intake;
mod jinja;
mod outbox;
mod proxy;
mod rate_limit;
mod reload;
mod retry;
mod sample;
mod secret;
mod server;
mod source;
mod tls;
