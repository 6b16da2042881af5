//! The store layer: the only code that reads the registry's storage — locating it (the registry's
//! config), scanning it into an inventory, hashing blob data, and the incremental-verification state.

pub mod config;
pub mod details;
pub mod scan;
pub mod state;
pub mod verify;
