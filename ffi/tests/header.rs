//! `include/otlpx.h` is what cbindgen makes of the sources: regenerated
//! here and compared byte for byte. `OTLPX_BLESS=1 cargo test -p otlpx-ffi
//! --test header` rewrites it after an intended change to the ABI.

use std::path::Path;

#[test]
fn header_is_up_to_date() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("ffi/cbindgen.toml is valid");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen can read the sources")
        .write(&mut generated);
    let path = crate_dir.join("include/otlpx.h");
    if std::env::var_os("OTLPX_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/otlpx.h");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "ffi/include/otlpx.h is stale: the ABI changed. Review the change, then \
         run `OTLPX_BLESS=1 cargo test -p otlpx-ffi --test header` and commit the header."
    );
}
