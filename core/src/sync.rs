//! A small shim so lock-free code runs on `std` atomics normally and on
//! `loom`'s model-checked ones under `--cfg loom` (the pattern tokio and bytes
//! use). Only the primitives the lock-free modules need are re-exported.

#[cfg(loom)]
pub(crate) use loom::sync::atomic;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic;
