//! The load generator behind `otlpx-bench run`: the same workload through
//! otlpx and through the opentelemetry SDK, each engine in a process of its
//! own, against the embedded OTLP receiver or a given endpoint.
//!
//! The flow, parent first: [`options`] (the command line, validated into a
//! `Plan`), [`parent`] (the receiver, the children, the output), [`child`]
//! (one engine measured), `workload` (the producers and the span or log
//! record they record), `otlpx_engine` and `sdk` (the two engines, each
//! recording the run's signal), `report` (results as JSON and as tables),
//! `sys` (CPU time and peak memory).

pub mod child;
mod error;
pub mod options;
mod otlpx_engine;
pub mod parent;
mod report;
mod sdk;
mod sys;
mod workload;

pub use error::BenchError;

/// The name of the hidden subcommand that runs one engine in a child
/// process.
pub const CHILD_SUBCOMMAND: &str = "__child";
