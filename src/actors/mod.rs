//! Actors, one per subsystem, each the sole owner of its resources.

pub mod audit;
pub mod auth;
pub mod catalog;
pub mod db;
pub mod idp;
pub mod metrics;
pub mod scoping;
pub mod upstream;
