//! The model layer: values that describe a store (digests, the path grammar, manifests, the
//! inventory, findings, time and duration text). No I/O.

pub mod digest;
pub mod duration;
pub mod finding;
pub mod gojson;
pub mod inventory;
pub mod layout;
pub mod manifest;
pub mod pushed;
pub mod timefmt;
