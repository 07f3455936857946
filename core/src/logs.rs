//! Logs: the front door of the logs signal. A [`Logger`] (from
//! [`Engine::logger`](crate::Engine::logger)) emits log records, each
//! encoded once, as an OTLP `LogRecord`, straight into the logs rings; from
//! there they travel the pipeline every signal shares.

use crate::record::Recorder;
use std::sync::Arc;

/// An instrumentation scope that emits log records. Cheap to clone; obtain
/// one from [`Engine::logger`](crate::Engine::logger) and keep it.
#[derive(Clone)]
pub struct Logger {
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) scope: u32,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger")
            .field("scope", &self.scope)
            .finish()
    }
}
