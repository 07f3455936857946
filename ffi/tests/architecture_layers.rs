//! The C ABI's modules keep the layout rule core's do: no two top-level
//! modules of `ffi/src` import each other, directly or around a circle.
//! The check is core's (`core/tests/architecture_layers.rs`, included
//! below), run over this crate's sources with this crate's list of known
//! circles. Including it brings core's own tests along: they run here too,
//! and still check core.
//!
//! `KNOWN` lists circles still to break, each with why it is there (none
//! now); a circle not listed fails the test, and so does a listed one that
//! is gone (take it off the list).

use std::path::Path;

#[path = "../../core/tests/architecture_layers.rs"]
mod layers;

/// Circles not broken yet: (the modules in it, sorted; why).
const KNOWN: &[(&[&str], &str)] = &[];

#[test]
// Reading the sources is no memory-model question, and takes miri many
// minutes.
#[cfg_attr(miri, ignore)]
fn no_two_modules_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    layers::check(&src, KNOWN, &["engine", "span", "logs", "state"]);
}
