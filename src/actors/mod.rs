//! Actors, one per subsystem, each the sole owner of its resources.

pub mod auth;
pub mod db;
