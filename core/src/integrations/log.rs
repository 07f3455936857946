//! From the `log` crate to otlpx: a [`::log::Log`] that emits each record
//! as an OTLP log record.
//!
//! ```
//! let engine = otlpx::Engine::builder().export(false).build()?;
//! otlpx::log::init(&engine, log::LevelFilter::Info)?; // once per process
//! log::warn!(order = 1042; "payment retried");
//! assert_eq!(engine.signal_stats(otlpx::Signal::Logs).recorded, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A record's level is the severity (`Trace` 1, `Debug` 5, `Info` 9,
//! `Warn` 13, `Error` 17); its message the body (a literal message is
//! borrowed, a formatted one formatted into a per-thread buffer); its
//! key-values (`log`'s `kv`: `info!(user = id; "…")`) attributes of their
//! own type (integers, floats, bools, strings; anything else as its
//! text); its file, line and module path `code.file.path`,
//! `code.line.number` and `code.namespace`. Its **target is the
//! instrumentation scope name** (version empty), as in
//! `opentelemetry-appender-log` and [`otlpx::tracing`](crate::tracing).
//! It is correlated with the span context current on its thread
//! ([`SpanContext::attach`](crate::SpanContext::attach); entered `tracing`
//! spans too, with the otlpx layer).
//!
//! Never recorded, as with the `tracing` layer: records whose target
//! belongs to otlpx or to a crate of its export path
//! ([`EXCLUDED_CRATES`]), and
//! records logged on the engine's own threads (named `otlpx-…`). A record
//! below the engine's minimum log severity costs a compare; one recorded
//! allocates nothing once the thread is warm.

pub use super::EXCLUDED_CRATES;
use super::{Attrs, FieldBuf, Item, Key, Scopes, on_engine_thread, push_location, with_scratch};
use crate::engine::Engine;
use crate::logs::{AnyValue, LogRecord, Severity};
use crate::value::Value;
use ::log::kv::{self, VisitSource, VisitValue};
use ::log::{Level, LevelFilter, Log, Metadata, Record, SetLoggerError};

/// A [`::log::Log`] recording into an otlpx engine. See the [module
/// docs](self).
pub struct OtlpxLogger {
    scopes: Scopes,
}

impl std::fmt::Debug for OtlpxLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpxLogger").finish_non_exhaustive()
    }
}

impl OtlpxLogger {
    /// A logger recording into `engine`. It holds the engine weakly: once
    /// the application drops its last handle, the engine shuts down as
    /// usual and the logger records into nothing.
    pub fn new(engine: &Engine) -> Self {
        Self {
            scopes: Scopes::new(engine),
        }
    }
}

/// Installs an [`OtlpxLogger`] for `engine` as the process's `log` logger
/// and sets `log`'s maximum level to `max_level`.
///
/// # Errors
///
/// [`SetLoggerError`] when a logger was installed already (`log` allows
/// one per process).
pub fn init(engine: &Engine, max_level: LevelFilter) -> Result<(), SetLoggerError> {
    ::log::set_boxed_logger(Box::new(OtlpxLogger::new(engine)))?;
    ::log::set_max_level(max_level);
    Ok(())
}

const fn severity(level: Level) -> Severity {
    match level {
        Level::Trace => Severity::TRACE,
        Level::Debug => Severity::DEBUG,
        Level::Info => Severity::INFO,
        Level::Warn => Severity::WARN,
        Level::Error => Severity::ERROR,
    }
}

impl Log for OtlpxLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.scopes
            .base()
            .logger
            .enabled(severity(metadata.level()))
            && !super::is_excluded_target(metadata.target())
            && !on_engine_thread()
    }

    fn log(&self, record: &Record<'_>) {
        let severity = severity(record.level());
        if !self.scopes.base().logger.enabled(severity) || on_engine_thread() {
            return;
        }
        let scope = self.scopes.lookup(record.target());
        let scope = self.scopes.get(&scope);
        if scope.excluded {
            return;
        }
        with_scratch(|buf| {
            let message = match record.args().as_str() {
                Some(literal) => Message::Literal(literal),
                None => {
                    let (start, end) = buf.format(*record.args());
                    Message::Formatted(Item::Str(start, end))
                }
            };
            let _ = record.key_values().visit(&mut Pairs(buf));
            let buf = &*buf;
            let body = match message {
                Message::Literal(s) => Value::Str(s),
                Message::Formatted(item) => buf.value(item),
            };
            let mut attrs = Attrs::new();
            for &(key, item) in &buf.items {
                attrs.push(buf.key(key), buf.value(item));
            }
            push_location(
                &mut attrs,
                record.file(),
                record.line(),
                record.module_path(),
            );
            scope.logger.emit(
                &LogRecord::new(severity)
                    .body(AnyValue::Value(body))
                    .attributes(attrs.as_slice()),
            );
        });
    }

    /// Flushes the engine ([`Engine::flush`]), waiting at most 5 s; does
    /// nothing for an engine that does not export or is gone.
    fn flush(&self) {
        #[cfg(feature = "export")]
        if let Some(inner) = self.scopes.engine.upgrade() {
            let _ = Engine { inner }.flush(std::time::Duration::from_secs(5));
        }
    }
}

/// A record's message: borrowed when it is a literal.
enum Message<'a> {
    Literal(&'a str),
    Formatted(Item),
}

/// Copies `log` key-values into a [`FieldBuf`].
struct Pairs<'b>(&'b mut FieldBuf);

impl<'kvs> VisitSource<'kvs> for Pairs<'_> {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        let (start, end) = self.0.text(key.as_str());
        let key = Key::Text(start, end);
        let mut one = One { buf: self.0, key };
        if value.visit(&mut one).is_err() {
            // A value that would not be visited: its text, as `log` shows it.
            self.0.push_fmt(key, format_args!("{value}"));
        }
        Ok(())
    }
}

/// Copies one key-value's value.
struct One<'b> {
    buf: &'b mut FieldBuf,
    key: Key,
}

impl<'v> VisitValue<'v> for One<'_> {
    fn visit_any(&mut self, value: kv::Value<'_>) -> Result<(), kv::Error> {
        self.buf.push_fmt(self.key, format_args!("{value}"));
        Ok(())
    }

    fn visit_null(&mut self) -> Result<(), kv::Error> {
        self.buf.push_str(self.key, "");
        Ok(())
    }

    fn visit_u64(&mut self, value: u64) -> Result<(), kv::Error> {
        self.buf.push(self.key, Item::U64(value));
        Ok(())
    }

    fn visit_i64(&mut self, value: i64) -> Result<(), kv::Error> {
        self.buf.push(self.key, Item::I64(value));
        Ok(())
    }

    fn visit_u128(&mut self, value: u128) -> Result<(), kv::Error> {
        match u64::try_from(value) {
            Ok(v) => self.buf.push(self.key, Item::U64(v)),
            Err(_) => self.buf.push_fmt(self.key, format_args!("{value}")),
        }
        Ok(())
    }

    fn visit_i128(&mut self, value: i128) -> Result<(), kv::Error> {
        match i64::try_from(value) {
            Ok(v) => self.buf.push(self.key, Item::I64(v)),
            Err(_) => self.buf.push_fmt(self.key, format_args!("{value}")),
        }
        Ok(())
    }

    fn visit_f64(&mut self, value: f64) -> Result<(), kv::Error> {
        self.buf.push(self.key, Item::F64(value));
        Ok(())
    }

    fn visit_bool(&mut self, value: bool) -> Result<(), kv::Error> {
        self.buf.push(self.key, Item::Bool(value));
        Ok(())
    }

    fn visit_str(&mut self, value: &str) -> Result<(), kv::Error> {
        self.buf.push_str(self.key, value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_the_base_severities() {
        let numbers = [
            Level::Trace,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
        ]
        .map(|l| severity(l).number());
        assert_eq!(numbers, [1, 5, 9, 13, 17]);
    }
}
