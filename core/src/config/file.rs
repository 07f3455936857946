//! The TOML configuration file, read into a [`Layer`].
//!
//! Sections: top-level `disabled`, then `[resource]`, `[exporter]` (with
//! `[exporter.traces]`, `[exporter.metrics]`, `[exporter.logs]`),
//! `[batch]` (with `[batch.logs]`, `[batch.metrics]`), `[logs]`,
//! `[sampling]`, `[limits]`, `[workers]`, `[admin]`, `[retry]` and
//! `[spool]`; README.md shows each key. An unknown key or section is an
//! error naming it and its line, so a typo never silently leaves a
//! default in place. Durations are whole milliseconds, in keys ending
//! `_ms`, as in the environment.

use super::env;
use super::layer::{BatchLayer, ExporterLayer, LIMITS, Layer, Opt, Scope, Sourced};
use super::{ConfigError, Overflow, Source};
use std::path::Path;
use std::time::Duration;
use toml_edit::{Item, TableLike};

/// Reads `text`, the contents of `path`.
pub(crate) fn read(
    text: &str,
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<Layer, ConfigError> {
    let file = File { text, path };
    let doc = toml_edit::Document::parse(text).map_err(|e| {
        let line = e.span().map_or(1, |s| file.line(s.start));
        ConfigError::new(
            &file.at(line),
            "",
            "",
            format!("not valid TOML: {}", e.message()),
        )
    })?;
    let root = doc
        .as_item()
        .as_table_like()
        .expect("a document's root is a table");
    let mut layer = Layer::default();
    file.read_root(root, &mut layer, warnings)?;
    Ok(layer)
}

struct File<'a> {
    text: &'a str,
    path: &'a Path,
}

/// One key of a section, with where it is.
struct Entry<'t> {
    /// The dotted key, `exporter.endpoint`.
    key: String,
    item: &'t Item,
    source: Source,
}

impl File<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn at(&self, line: usize) -> Source {
        Source::File {
            path: self.path.to_owned(),
            line,
        }
    }

    /// The entries of `table`, keyed under `prefix`.
    fn entries<'t>(&self, table: &'t dyn TableLike, prefix: &str) -> Vec<Entry<'t>> {
        table
            .iter()
            .map(|(k, item)| {
                let span = table
                    .get_key_value(k)
                    .and_then(|(key, _)| key.span())
                    .or_else(|| item.span());
                let line = span.map_or(1, |s| self.line(s.start));
                Entry {
                    key: if prefix.is_empty() {
                        k.to_owned()
                    } else {
                        format!("{prefix}.{k}")
                    },
                    item,
                    source: self.at(line),
                }
            })
            .collect()
    }

    fn read_root(
        &self,
        root: &dyn TableLike,
        layer: &mut Layer,
        warnings: &mut Vec<String>,
    ) -> Result<(), ConfigError> {
        for e in self.entries(root, "") {
            match e.key.as_str() {
                "disabled" => layer.disabled = e.boolean()?,
                "resource" => self.resource(e.table()?, layer)?,
                "exporter" => self.exporter(e.table()?, layer, warnings)?,
                "batch" => self.batch(e.table()?, layer)?,
                "logs" => self.logs(e.table()?, layer)?,
                "sampling" => self.sampling(e.table()?, layer, warnings)?,
                "limits" => self.limits(e.table()?, layer)?,
                "workers" => self.workers(e.table()?, layer)?,
                "admin" => self.admin(e.table()?, layer)?,
                "retry" => self.retry(e.table()?, layer)?,
                "spool" => self.spool(e.table()?, layer)?,
                _ => return Err(e.unknown(&SECTIONS)),
            }
        }
        Ok(())
    }

    fn resource(&self, t: &dyn TableLike, layer: &mut Layer) -> Result<(), ConfigError> {
        for e in self.entries(t, "resource") {
            match e.key.as_str() {
                "resource.service_name" => layer.service_name = e.string()?,
                "resource.attributes" => {
                    for a in self.entries(e.table()?, "resource.attributes") {
                        let name = a.key["resource.attributes.".len()..].to_owned();
                        if let Some(v) = a.string()? {
                            layer.resource.push((name, v));
                        }
                    }
                }
                _ => return Err(e.unknown(&["service_name", "attributes"])),
            }
        }
        Ok(())
    }

    fn exporter(
        &self,
        t: &dyn TableLike,
        layer: &mut Layer,
        warnings: &mut Vec<String>,
    ) -> Result<(), ConfigError> {
        let generic = self.exporter_scope(t, Scope::Generic, layer, warnings)?;
        layer.exporter[Scope::Generic as usize] = generic;
        Ok(())
    }

    fn exporter_scope(
        &self,
        t: &dyn TableLike,
        scope: Scope,
        layer: &mut Layer,
        warnings: &mut Vec<String>,
    ) -> Result<ExporterLayer, ConfigError> {
        let mut x = ExporterLayer::default();
        let section = scope.section();
        for e in self.entries(t, section) {
            let name = &e.key[section.len() + 1..];
            match name {
                "endpoint" => x.endpoint = e.endpoints()?,
                "protocol" => {
                    x.protocol = e.parse_str(|v, s| env::protocol(v, warnings, s))?;
                }
                "compression" => {
                    x.compression = e.parse_str(|v, _| env::compression(v).map(Some))?
                }
                "timeout_ms" => x.timeout = e.ms()?,
                "certificate" => x.certificate = e.string()?.map(|s| s.map(Into::into)),
                "client_certificate" => {
                    x.client_certificate = e.string()?.map(|s| s.map(Into::into));
                }
                "client_key" => x.client_key = e.string()?.map(|s| s.map(Into::into)),
                "insecure" => x.insecure = e.boolean()?,
                "enabled" => x.enabled = e.boolean()?,
                "headers" => {
                    for h in self.entries(e.table()?, &e.key) {
                        let header = h.key[e.key.len() + 1..].to_owned();
                        // Header values may be secrets: never echoed.
                        let value = h.item.as_str().ok_or_else(|| {
                            ConfigError::new(&h.source, &h.key, "***", "expected a string")
                        })?;
                        x.headers.push((
                            header,
                            Sourced {
                                value: value.to_owned(),
                                source: h.source.clone(),
                            },
                        ));
                    }
                }
                "traces" | "metrics" | "logs" if scope == Scope::Generic => {
                    let sub = match name {
                        "traces" => Scope::Traces,
                        "metrics" => Scope::Metrics,
                        _ => Scope::Logs,
                    };
                    layer.exporter[sub as usize] =
                        self.exporter_scope(e.table()?, sub, layer, warnings)?;
                }
                "compression_level" if scope == Scope::Generic => {
                    layer.compression_level = match e.int()? {
                        Some(v) => match i32::try_from(v.value) {
                            Ok(n) => Sourced::new(n, v.source),
                            Err(_) => return Err(e.invalid(&e.text(), "out of range")),
                        },
                        None => None,
                    };
                }
                "shutdown_timeout_ms" if scope == Scope::Generic => {
                    layer.shutdown_timeout = e.ms()?;
                }
                "connections" if scope == Scope::Generic => layer.connections = e.count()?,
                "max_in_flight" if scope == Scope::Generic => layer.max_in_flight = e.count()?,
                "max_in_flight_bytes" if scope == Scope::Generic => {
                    layer.max_in_flight_bytes = e.count()?;
                }
                "overflow" if scope == Scope::Generic => {
                    layer.overflow = e.parse_str(|v, _| match v {
                        "drop_oldest" => Ok(Some(Overflow::DropOldest)),
                        "drop_newest" => Ok(Some(Overflow::DropNewest)),
                        _ => Err("expected \"drop_oldest\" or \"drop_newest\"".to_owned()),
                    })?;
                }
                _ => {
                    return Err(e.unknown(if scope == Scope::Generic {
                        &EXPORTER_KEYS
                    } else {
                        &EXPORTER_KEYS[..SIGNAL_EXPORTER_KEYS]
                    }));
                }
            }
        }
        Ok(x)
    }

    fn batch(&self, t: &dyn TableLike, layer: &mut Layer) -> Result<(), ConfigError> {
        for e in self.entries(t, "batch") {
            match &e.key["batch.".len()..] {
                "max_batch_bytes" => layer.max_batch_bytes = e.count()?,
                "logs" => {
                    for l in self.entries(e.table()?, "batch.logs") {
                        let name = &l.key["batch.logs.".len()..];
                        if !batch_key(&l, name, &mut layer.blrp)? {
                            return Err(l.unknown(&BATCH_KEYS[..4]));
                        }
                    }
                }
                "metrics" => {
                    for m in self.entries(e.table()?, "batch.metrics") {
                        match &m.key["batch.metrics.".len()..] {
                            "export_interval_ms" => layer.metric_export_interval = m.ms()?,
                            "export_timeout_ms" => layer.metric_export.export_timeout = m.ms()?,
                            _ => {
                                return Err(m.unknown(&["export_interval_ms", "export_timeout_ms"]));
                            }
                        }
                    }
                }
                name => {
                    if !batch_key(&e, name, &mut layer.bsp)? {
                        return Err(e.unknown(&BATCH_KEYS));
                    }
                }
            }
        }
        Ok(())
    }

    /// `[logs]`: the logs front door's own settings.
    fn logs(&self, t: &dyn TableLike, layer: &mut Layer) -> Result<(), ConfigError> {
        for e in self.entries(t, "logs") {
            match e.key.as_str() {
                // A name, or a number: as an integer or a string.
                "logs.min_severity" => {
                    let text = match e.item.as_integer() {
                        Some(n) => n.to_string(),
                        None => e
                            .item
                            .as_str()
                            .ok_or_else(|| {
                                e.invalid(&e.text(), "expected a severity name or number")
                            })?
                            .to_owned(),
                    };
                    let n = env::severity(&text).map_err(|reason| e.invalid(&text, &reason))?;
                    layer.logs_min_severity = Sourced::new(n, e.source.clone());
                }
                _ => return Err(e.unknown(&["min_severity"])),
            }
        }
        Ok(())
    }

    fn sampling(
        &self,
        t: &dyn TableLike,
        layer: &mut Layer,
        warnings: &mut Vec<String>,
    ) -> Result<(), ConfigError> {
        let mut name = None;
        let mut ratio = None;
        for e in self.entries(t, "sampling") {
            match e.key.as_str() {
                "sampling.sampler" => name = Some(e),
                "sampling.ratio" => ratio = Some(e),
                _ => return Err(e.unknown(&["sampler", "ratio"])),
            }
        }
        let ratio_text = match &ratio {
            Some(r) => Some(match (r.item.as_float(), r.item.as_integer()) {
                (Some(f), _) => f.to_string(),
                (_, Some(i)) => i.to_string(),
                _ => return Err(r.invalid(&r.text(), "expected a number from 0 to 1")),
            }),
            None => None,
        };
        match name {
            Some(e) => {
                layer.sampler =
                    e.parse_str(|v, s| env::sampler(v, ratio_text.as_deref(), warnings, s))?;
            }
            None => {
                if let Some(r) = ratio {
                    warnings.push(format!(
                        "{}: sampling.ratio has no effect without sampling.sampler",
                        r.source
                    ));
                }
            }
        }
        Ok(())
    }

    fn limits(&self, t: &dyn TableLike, layer: &mut Layer) -> Result<(), ConfigError> {
        for e in self.entries(t, "limits") {
            let name = &e.key["limits.".len()..];
            let Some(i) = LIMITS.iter().position(|(_, _, key)| *key == name) else {
                let keys: Vec<&str> = LIMITS.iter().map(|(_, _, k)| *k).collect();
                return Err(e.unknown(&keys));
            };
            layer.limits[i] = match e.int()? {
                None => None,
                Some(v) => match u32::try_from(v.value) {
                    Ok(n) => Sourced::new(n, v.source),
                    Err(_) => {
                        return Err(
                            e.invalid(&e.text(), "expected a whole number from 0 to 4294967295")
                        );
                    }
                },
            };
        }
        Ok(())
    }

    fn workers(&self, t: &dyn TableLike, layer: &mut Layer) -> Result<(), ConfigError> {
        for e in self.entries(t, "workers") {
            match e.key.as_str() {
                "workers.count" => layer.workers = e.count()?,
                "workers.pin" => layer.pin_workers = e.boolean()?,
                "workers.ring_bytes_per_cpu" => layer.ring_bytes_per_cpu = e.count()?,
                "workers.rings" => layer.rings = e.count()?,
                "workers.cores" => {
                    let array = e
                        .item
                        .as_array()
                        .ok_or_else(|| e.invalid(&e.text(), "expected an array of core numbers"))?;
                    let cores = array
                        .iter()
                        .map(|v| v.as_integer().and_then(|n| usize::try_from(n).ok()))
                        .collect::<Option<Vec<usize>>>()
                        .ok_or_else(|| e.invalid(&e.text(), "expected an array of core numbers"))?;
                    layer.worker_cores = Sourced::new(cores, e.source.clone());
                }
                _ => {
                    return Err(e.unknown(&[
                        "count",
                        "pin",
                        "cores",
                        "ring_bytes_per_cpu",
                        "rings",
                    ]));
                }
            }
        }
        Ok(())
    }

    fn admin(&self, t: &dyn TableLike, layer: &mut Layer) -> Result<(), ConfigError> {
        for e in self.entries(t, "admin") {
            match e.key.as_str() {
                "admin.enabled" => layer.admin_enabled = e.boolean()?,
                "admin.address" => layer.admin_address = e.string()?,
                "admin.ready_window_ms" => layer.ready_window = e.ms()?,
                _ => return Err(e.unknown(&["enabled", "address", "ready_window_ms"])),
            }
        }
        Ok(())
    }

    /// `[retry]`.
    fn retry(&self, t: &dyn TableLike, layer: &mut Layer) -> Result<(), ConfigError> {
        for e in self.entries(t, "retry") {
            match e.key.as_str() {
                "retry.enabled" => layer.retry_enabled = e.boolean()?,
                "retry.initial_backoff_ms" => layer.retry_initial_backoff = e.ms()?,
                "retry.max_backoff_ms" => layer.retry_max_backoff = e.ms()?,
                _ => {
                    return Err(e.unknown(&["enabled", "initial_backoff_ms", "max_backoff_ms"]));
                }
            }
        }
        Ok(())
    }

    /// `[spool]`.
    fn spool(&self, t: &dyn TableLike, layer: &mut Layer) -> Result<(), ConfigError> {
        for e in self.entries(t, "spool") {
            match e.key.as_str() {
                "spool.dir" => layer.spool_dir = e.string()?.map(|s| s.map(Into::into)),
                "spool.max_bytes" => layer.spool_max_bytes = e.count()?,
                _ => return Err(e.unknown(&["dir", "max_bytes"])),
            }
        }
        Ok(())
    }
}

/// The top-level section names, for "unknown key" errors.
const SECTIONS: [&str; 11] = [
    "disabled", "resource", "exporter", "batch", "logs", "sampling", "limits", "workers", "admin",
    "retry", "spool",
];

/// Keys of `[exporter]`; the first [`SIGNAL_EXPORTER_KEYS`] also of
/// `[exporter.<signal>]`.
const EXPORTER_KEYS: [&str; 19] = [
    "endpoint",
    "protocol",
    "headers",
    "compression",
    "timeout_ms",
    "certificate",
    "client_certificate",
    "client_key",
    "insecure",
    "enabled",
    "compression_level",
    "shutdown_timeout_ms",
    "connections",
    "max_in_flight",
    "max_in_flight_bytes",
    "overflow",
    "traces",
    "metrics",
    "logs",
];

/// How many of [`EXPORTER_KEYS`] a signal's section takes.
const SIGNAL_EXPORTER_KEYS: usize = 10;

/// Keys of `[batch]`; the first four also of `[batch.logs]`.
const BATCH_KEYS: [&str; 7] = [
    "schedule_delay_ms",
    "export_timeout_ms",
    "max_queue_size",
    "max_export_batch_size",
    "max_batch_bytes",
    "logs",
    "metrics",
];

/// Reads a batch processor key into `b`; false if `name` is not one.
fn batch_key(e: &Entry<'_>, name: &str, b: &mut BatchLayer) -> Result<bool, ConfigError> {
    match name {
        "schedule_delay_ms" => b.schedule_delay = e.ms()?,
        "export_timeout_ms" => b.export_timeout = e.ms()?,
        "max_queue_size" => b.max_queue_size = e.count()?,
        "max_export_batch_size" => b.max_export_batch_size = e.count()?,
        _ => return Ok(false),
    }
    Ok(true)
}

impl Entry<'_> {
    /// The value as written, for messages.
    fn text(&self) -> String {
        match self.item.as_value() {
            // A string as its contents: messages quote values themselves.
            Some(v) => v
                .as_str()
                .map_or_else(|| v.to_string().trim().to_owned(), str::to_owned),
            None => format!("<{}>", self.item.type_name()),
        }
    }

    fn invalid(&self, value: &str, reason: &str) -> ConfigError {
        ConfigError::new(&self.source, &self.key, value, reason)
    }

    fn unknown(&self, known: &[&str]) -> ConfigError {
        ConfigError::new(
            &self.source,
            &self.key,
            self.text(),
            format!("unknown key; expected one of: {}", known.join(", ")),
        )
    }

    fn table(&self) -> Result<&dyn TableLike, ConfigError> {
        self.item
            .as_table_like()
            .ok_or_else(|| self.invalid(&self.text(), "expected a table"))
    }

    fn string(&self) -> Result<Opt<String>, ConfigError> {
        match self.item.as_str() {
            Some(s) => Ok(Sourced::new(s.to_owned(), self.source.clone())),
            None => Err(self.invalid(&self.text(), "expected a string")),
        }
    }

    /// An endpoint, or several: a string (itself a comma-separated list
    /// or one URL) or an array of strings, kept as one comma-separated
    /// list for [`resolve`](super::resolve) to split.
    fn endpoints(&self) -> Result<Opt<String>, ConfigError> {
        if let Some(array) = self.item.as_array() {
            let urls: Option<Vec<&str>> = array.iter().map(|v| v.as_str()).collect();
            return match urls {
                Some(urls) if !urls.is_empty() => {
                    Ok(Sourced::new(urls.join(","), self.source.clone()))
                }
                _ => Err(self.invalid(&self.text(), "expected a non-empty array of URLs")),
            };
        }
        self.string()
    }

    fn boolean(&self) -> Result<Opt<bool>, ConfigError> {
        match self.item.as_bool() {
            Some(b) => Ok(Sourced::new(b, self.source.clone())),
            None => Err(self.invalid(&self.text(), "expected true or false")),
        }
    }

    fn int(&self) -> Result<Opt<i64>, ConfigError> {
        match self.item.as_integer() {
            Some(n) => Ok(Sourced::new(n, self.source.clone())),
            None => Err(self.invalid(&self.text(), "expected a whole number")),
        }
    }

    fn count(&self) -> Result<Opt<usize>, ConfigError> {
        match self.item.as_integer().map(usize::try_from) {
            Some(Ok(n)) => Ok(Sourced::new(n, self.source.clone())),
            _ => Err(self.invalid(&self.text(), "expected a whole number, 0 or more")),
        }
    }

    fn ms(&self) -> Result<Opt<Duration>, ConfigError> {
        match self.item.as_integer().map(u64::try_from) {
            Some(Ok(n)) => Ok(Sourced::new(Duration::from_millis(n), self.source.clone())),
            _ => Err(self.invalid(
                &self.text(),
                "expected a whole number of milliseconds, 0 or more",
            )),
        }
    }

    /// A string parsed by one of the environment's parsers.
    fn parse_str<T>(
        &self,
        parse: impl FnOnce(&str, &Source) -> Result<Option<T>, String>,
    ) -> Result<Opt<T>, ConfigError> {
        let s = self
            .item
            .as_str()
            .ok_or_else(|| self.invalid(&self.text(), "expected a string"))?;
        match parse(s, &self.source) {
            Ok(v) => Ok(v.and_then(|v| Sourced::new(v, self.source.clone()))),
            Err(reason) => Err(self.invalid(s, &reason)),
        }
    }
}
