//! End-to-end tests live in `tests/`; this crate has no code of its own,
//! bar one thing: the README's Rust quick start runs as a doctest of this
//! crate, against the embedded receiver (`cargo test -p otlpx-e2e --doc`),
//! so the first code a newcomer copies is code that works.

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeQuickStart;
