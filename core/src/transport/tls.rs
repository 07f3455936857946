//! TLS for `https://` endpoints: rustls, never OpenSSL.
//!
//! STUB: to be written (issue 4). `ClientTls::load` reads the configured
//! PEM files once, at build, so a missing or malformed file is a build
//! error, never an export failure.

use crate::config::TlsFiles;

/// A client TLS configuration, ready for either transport.
#[derive(Clone, Debug)]
pub(crate) struct ClientTls {
    _private: (),
}

impl ClientTls {
    /// Loads the roots (system roots unless a CA file is given) and the
    /// client identity (both files, or neither).
    ///
    /// Errors name the file and what is wrong with it.
    pub(crate) fn load(files: &TlsFiles) -> Result<Self, String> {
        let _ = files;
        Err("TLS is not built yet".to_owned())
    }
}
