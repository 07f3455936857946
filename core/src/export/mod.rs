//! The export stages, in the order an item meets them once it is in a
//! ring: [`drain`] (worker threads take one signal's records out of their
//! rings), [`batch`] (when a request is due and what it takes), [`frame`]
//! (the records, already encoded, framed as one `Export*ServiceRequest`),
//! [`compress`], [`deliver`] (in-flight bounds, retries, the spool
//! hand-off), [`spool`] (the disk, for what cannot be sent yet) and
//! [`transport`] (gRPC and HTTP). Every signal goes through the same
//! stages: a signal is a value the records and requests carry, not a copy
//! of this module.
//!
//! Without the `export` feature only [`batch`] and [`frame`] remain: the
//! engine frames requests for a caller who sends them
//! (`Engine::drain`).

pub(crate) mod batch;
#[cfg(feature = "export")]
pub(crate) mod compress;
#[cfg(feature = "export")]
pub(crate) mod deliver;
#[cfg(feature = "export")]
pub(crate) mod drain;
pub(crate) mod frame;
#[cfg(feature = "export")]
pub mod spool;
#[cfg(feature = "export")]
pub mod transport;
