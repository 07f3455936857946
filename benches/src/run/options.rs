//! The options of `otlpx-bench run` and of its hidden per-engine child,
//! and their validation into a [`Plan`].
//!
//! The parent and the child parse the same option types, so the child sees
//! exactly the workload the user asked for: [`Plan::child_args`] writes a
//! plan back out as the arguments [`ChildArgs`] reads, and
//! [`ChildArgs::plan`] validates it again with the same rules.
//!
//! Every option but `--signal` and `--attrs`' default means the same for
//! every signal: an item is a span (`--signal traces`) or a log record
//! (`--signal logs`), and `--items` (alias `--spans`) counts them.

use std::time::Duration;

use clap::{Args, ValueEnum};

use super::error::BenchError;

/// The OTLP signal a run records and exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Signal {
    /// Spans, to `/v1/traces` or the gRPC `TraceService`.
    Traces,
    /// Log records, to `/v1/logs` or the gRPC `LogsService`.
    Logs,
}

impl Signal {
    /// The name used on the command line and in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Traces => "traces",
            Self::Logs => "logs",
        }
    }

    /// The signal called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Traces, Self::Logs]
            .into_iter()
            .find(|s| s.name() == name)
    }

    /// What one item is called in tables and messages, plural.
    pub fn items(self) -> &'static str {
        match self {
            Self::Traces => "spans",
            Self::Logs => "log records",
        }
    }

    /// One item, singular.
    pub fn item(self) -> &'static str {
        match self {
            Self::Traces => "span",
            Self::Logs => "log record",
        }
    }

    /// The attributes an item carries unless `--attrs` says otherwise:
    /// the benchmark span's 8, a log record's 6.
    pub fn default_attrs(self) -> usize {
        match self {
            Self::Traces => otlpx_bench::ATTRIBUTE_COUNT,
            Self::Logs => super::workload::LOG_ATTRIBUTE_COUNT,
        }
    }

    /// The embedded receiver's name for this signal.
    pub fn receiver(self) -> otlpx_bench::receiver::Signal {
        match self {
            Self::Traces => otlpx_bench::receiver::Signal::Traces,
            Self::Logs => otlpx_bench::receiver::Signal::Logs,
        }
    }
}

/// Which engines `run` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineChoice {
    /// otlpx alone.
    Otlpx,
    /// The opentelemetry SDK alone.
    OtelSdk,
    /// otlpx, then the opentelemetry SDK, then their ratios.
    Both,
}

impl EngineChoice {
    /// The engines to run, in order.
    pub fn kinds(self) -> &'static [EngineKind] {
        match self {
            Self::Otlpx => &[EngineKind::Otlpx],
            Self::OtelSdk => &[EngineKind::OtelSdk],
            Self::Both => &[EngineKind::Otlpx, EngineKind::OtelSdk],
        }
    }
}

/// One engine under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    /// otlpx's exporter engine.
    Otlpx,
    /// opentelemetry_sdk's `BatchSpanProcessor` (for logs its
    /// `BatchLogProcessor`) with an opentelemetry-otlp exporter.
    OtelSdk,
}

impl EngineKind {
    /// The name used on the command line and in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Otlpx => "otlpx",
            Self::OtelSdk => "otel-sdk",
        }
    }

    /// The engine called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Otlpx, Self::OtelSdk]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

/// The OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
}

impl Protocol {
    /// The name used on the command line and in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Http => "http",
        }
    }

    /// The protocol called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Grpc, Self::Http]
            .into_iter()
            .find(|p| p.name() == name)
    }
}

/// The compression of request bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Compression {
    /// Uncompressed.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The name used on the command line and in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }

    /// The compression called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::None, Self::Gzip, Self::Zstd]
            .into_iter()
            .find(|c| c.name() == name)
    }
}

/// The most attributes an item may carry here: the OpenTelemetry default
/// attribute count limit, which both engines apply; beyond it the engines
/// would cut different attributes and stop recording the same data.
pub const MAX_ATTRIBUTES: usize = 128;

/// The most producer threads: far past any machine this runs on, and low
/// enough that a typo does not spawn a million threads.
pub const MAX_THREADS: usize = 4096;

/// The longest `--duration`: one day, in seconds.
pub const MAX_DURATION_SECS: f64 = 86_400.0;

/// The options of `otlpx-bench run`.
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// The engine(s) to measure; `both` prints their ratios too.
    #[arg(long, value_enum, default_value_t = EngineChoice::Both)]
    pub engine: EngineChoice,

    /// The signal to record and export: spans or log records.
    #[arg(long, value_enum, default_value_t = Signal::Traces)]
    pub signal: Signal,

    /// An OTLP receiver's URL (for HTTP the base URL, `/v1/traces` or
    /// `/v1/logs` is appended). Default: start the embedded receiver.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,

    /// The OTLP transport.
    #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
    pub protocol: Protocol,

    /// The compression of request bodies.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,

    /// Producer threads. Default: the CPU count.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Record for this many seconds, then flush and shut down.
    /// Default: 10.
    #[arg(long, value_name = "SECS", conflicts_with = "items")]
    pub duration: Option<f64>,

    /// Record exactly this many items, spans or log records (split across
    /// the producers), then flush and shut down. `--spans` is an alias.
    #[arg(long, visible_alias = "spans", value_name = "N")]
    pub items: Option<u64>,

    /// Items per second, all producers together; 0: as fast as possible.
    #[arg(long, value_name = "ITEMS_PER_SEC", default_value_t = 0)]
    pub rate: u64,

    /// Attributes per item (strings, integers, a float and a boolean).
    /// Default: 8 per span, 6 per log record.
    #[arg(long, value_name = "K")]
    pub attrs: Option<usize>,

    /// One JSON object per engine on stdout, one a line, and nothing else.
    #[arg(long)]
    pub json: bool,
}

impl RunArgs {
    /// The validated workload.
    ///
    /// # Errors
    ///
    /// When an option is out of its range (see [`Plan::new`]).
    pub fn plan(&self) -> Result<Plan, BenchError> {
        let threads = match self.threads {
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let length = match (self.duration, self.items) {
            (_, Some(n)) => Length::Items(n),
            (Some(secs), None) => Length::duration_secs(secs)?,
            (None, None) => Length::Duration(DEFAULT_DURATION),
        };
        Plan::new(
            self.signal,
            self.protocol,
            self.compression,
            threads,
            length,
            self.rate,
            self.attrs.unwrap_or(self.signal.default_attrs()),
        )
    }
}

/// How long `run` records when neither `--duration` nor `--items` is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// The options of the hidden `__child` subcommand: one engine, one
/// endpoint, the workload fully resolved by the parent.
#[derive(Clone, Debug, Args)]
pub struct ChildArgs {
    /// The engine to measure.
    #[arg(long, value_enum)]
    pub engine: EngineKind,
    /// The signal to record.
    #[arg(long, value_enum)]
    pub signal: Signal,
    /// The receiver's URL.
    #[arg(long)]
    pub endpoint: String,
    /// The OTLP transport.
    #[arg(long, value_enum)]
    pub protocol: Protocol,
    /// The compression of request bodies.
    #[arg(long, value_enum)]
    pub compression: Compression,
    /// Producer threads.
    #[arg(long)]
    pub threads: usize,
    /// Seconds to record for.
    #[arg(long, conflicts_with = "items", required_unless_present = "items")]
    pub duration: Option<f64>,
    /// Items to record.
    #[arg(long)]
    pub items: Option<u64>,
    /// Items per second, all producers together; 0: as fast as possible.
    #[arg(long)]
    pub rate: u64,
    /// Attributes per item.
    #[arg(long)]
    pub attrs: usize,
}

impl ChildArgs {
    /// The validated workload.
    ///
    /// # Errors
    ///
    /// When an option is out of its range (see [`Plan::new`]).
    pub fn plan(&self) -> Result<Plan, BenchError> {
        let length = match (self.duration, self.items) {
            (_, Some(n)) => Length::Items(n),
            (Some(secs), None) => Length::duration_secs(secs)?,
            (None, None) => Length::Duration(DEFAULT_DURATION),
        };
        Plan::new(
            self.signal,
            self.protocol,
            self.compression,
            self.threads,
            length,
            self.rate,
            self.attrs,
        )
    }
}

/// How much each engine records.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Length {
    /// Record for this long.
    Duration(Duration),
    /// Record exactly this many items, all producers together.
    Items(u64),
}

impl Length {
    /// A duration given in seconds on the command line.
    ///
    /// # Errors
    ///
    /// When `secs` is not a positive number of at most [`MAX_DURATION_SECS`].
    pub fn duration_secs(secs: f64) -> Result<Self, BenchError> {
        if secs.is_finite() && secs > 0.0 && secs <= MAX_DURATION_SECS {
            Ok(Self::Duration(Duration::from_secs_f64(secs)))
        } else {
            Err(BenchError::msg(format!(
                "--duration must be more than 0 and at most {MAX_DURATION_SECS} seconds, not {secs}"
            )))
        }
    }
}

/// A validated workload: what every engine is asked to do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    /// The signal recorded.
    pub signal: Signal,
    /// The OTLP transport.
    pub protocol: Protocol,
    /// The compression of request bodies.
    pub compression: Compression,
    /// Producer threads, at least 1.
    pub threads: usize,
    /// How much to record.
    pub length: Length,
    /// Items per second, all producers together; 0: as fast as possible.
    pub rate: u64,
    /// Attributes per item, at most [`MAX_ATTRIBUTES`].
    pub attrs: usize,
}

impl Plan {
    /// Checks each setting's range.
    ///
    /// # Errors
    ///
    /// When `threads` is 0 or above [`MAX_THREADS`], `length` is zero
    /// items, or `attrs` is above [`MAX_ATTRIBUTES`].
    pub fn new(
        signal: Signal,
        protocol: Protocol,
        compression: Compression,
        threads: usize,
        length: Length,
        rate: u64,
        attrs: usize,
    ) -> Result<Self, BenchError> {
        if threads == 0 || threads > MAX_THREADS {
            return Err(BenchError::msg(format!(
                "--threads must be between 1 and {MAX_THREADS}, not {threads}"
            )));
        }
        if length == Length::Items(0) {
            return Err(BenchError::msg("--items (--spans) must be at least 1"));
        }
        if attrs > MAX_ATTRIBUTES {
            return Err(BenchError::msg(format!(
                "--attrs must be at most {MAX_ATTRIBUTES} (the OpenTelemetry attribute count \
                 limit both engines apply), not {attrs}"
            )));
        }
        Ok(Self {
            signal,
            protocol,
            compression,
            threads,
            length,
            rate,
            attrs,
        })
    }

    /// The arguments of the `__child` subcommand that runs this plan on
    /// `engine` against `endpoint`, subcommand name first.
    pub fn child_args(&self, engine: EngineKind, endpoint: &str) -> Vec<String> {
        let mut args = vec![
            super::CHILD_SUBCOMMAND.to_owned(),
            "--engine".to_owned(),
            engine.name().to_owned(),
            "--signal".to_owned(),
            self.signal.name().to_owned(),
            "--endpoint".to_owned(),
            endpoint.to_owned(),
            "--protocol".to_owned(),
            self.protocol.name().to_owned(),
            "--compression".to_owned(),
            self.compression.name().to_owned(),
            "--threads".to_owned(),
            self.threads.to_string(),
            "--rate".to_owned(),
            self.rate.to_string(),
            "--attrs".to_owned(),
            self.attrs.to_string(),
        ];
        match self.length {
            Length::Duration(d) => {
                args.push("--duration".to_owned());
                // `{:?}` of an f64 prints the shortest string that reads back
                // as the same value.
                args.push(format!("{:?}", d.as_secs_f64()));
            }
            Length::Items(n) => {
                args.push("--items".to_owned());
                args.push(n.to_string());
            }
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Child {
        #[command(subcommand)]
        cmd: ChildCmd,
    }

    #[derive(clap::Subcommand)]
    enum ChildCmd {
        #[command(name = "__child")]
        Child(ChildArgs),
    }

    fn round_trip(plan: Plan) -> Plan {
        let args = plan.child_args(EngineKind::OtelSdk, "http://127.0.0.1:1");
        let parsed = Child::try_parse_from(std::iter::once("x".to_owned()).chain(args))
            .expect("the child's arguments parse");
        let ChildCmd::Child(child) = parsed.cmd;
        assert_eq!(child.engine, EngineKind::OtelSdk);
        assert_eq!(child.endpoint, "http://127.0.0.1:1");
        child.plan().expect("a valid plan")
    }

    #[test]
    fn child_args_carry_the_whole_plan() {
        for signal in [Signal::Traces, Signal::Logs] {
            for length in [
                Length::Items(2000),
                Length::Duration(Duration::from_secs_f64(0.3)),
            ] {
                let plan = Plan::new(
                    signal,
                    Protocol::Http,
                    Compression::Zstd,
                    3,
                    length,
                    1234,
                    17,
                )
                .expect("a valid plan");
                assert_eq!(round_trip(plan), plan);
            }
        }
    }

    #[derive(Parser)]
    struct Run {
        #[command(flatten)]
        args: RunArgs,
    }

    fn run_plan(args: &[&str]) -> Plan {
        let parsed = Run::try_parse_from(std::iter::once("run").chain(args.iter().copied()))
            .expect("the options parse");
        parsed.args.plan().expect("a valid plan")
    }

    #[test]
    fn spans_is_an_alias_of_items_and_attrs_default_by_signal() {
        let traces = run_plan(&["--spans", "300", "--threads", "1"]);
        assert_eq!(traces.signal, Signal::Traces);
        assert_eq!(traces.length, Length::Items(300));
        assert_eq!(traces.attrs, otlpx_bench::ATTRIBUTE_COUNT);
        let logs = run_plan(&["--signal", "logs", "--items", "300", "--threads", "1"]);
        assert_eq!(logs.signal, Signal::Logs);
        assert_eq!(logs.length, Length::Items(300));
        assert_eq!(logs.attrs, 6);
        let more = run_plan(&["--signal", "logs", "--spans", "5", "--attrs", "9"]);
        assert_eq!((more.length, more.attrs), (Length::Items(5), 9));
        assert!(Run::try_parse_from(["run", "--items", "5", "--spans", "5"]).is_err());
        assert!(Run::try_parse_from(["run", "--duration", "1", "--items", "5"]).is_err());
        assert!(Run::try_parse_from(["run", "--signal", "metrics"]).is_err());
    }

    #[test]
    fn out_of_range_options_are_errors() {
        let ok = |threads, length, attrs| {
            Plan::new(
                Signal::Traces,
                Protocol::Grpc,
                Compression::None,
                threads,
                length,
                0,
                attrs,
            )
            .is_ok()
        };
        let ten = Length::Items(10);
        assert!(ok(1, ten, 0));
        assert!(ok(1, ten, MAX_ATTRIBUTES));
        assert!(!ok(0, ten, 8));
        assert!(!ok(1, Length::Items(0), 8));
        assert!(!ok(1, ten, MAX_ATTRIBUTES + 1));
        assert!(Length::duration_secs(0.0).is_err());
        assert!(Length::duration_secs(f64::NAN).is_err());
        assert!(Length::duration_secs(-1.0).is_err());
        assert!(Length::duration_secs(0.5).is_ok());
    }
}
