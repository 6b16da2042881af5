//! Shared integration-test support: fixture stores and the real registry.
#![allow(dead_code)]

pub mod contracts;
pub mod damage;
pub mod kill_points;
pub mod net;
pub mod registry;
pub mod s3;
pub mod store;
pub mod unprivileged;
