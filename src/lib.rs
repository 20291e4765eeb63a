pub mod config;
pub mod secret;
pub mod target;
