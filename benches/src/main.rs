//! `otlpx-bench`: the load generator that measures otlpx and the
//! opentelemetry SDK side by side, and a standalone OTLP sink.
//!
//! `otlpx-bench` with no arguments is `otlpx-bench run`: both engines, one
//! after the other and each in a child process of its own, record the same
//! spans (`--signal logs`: log records) for 10 seconds and export them over
//! OTLP/gRPC to the embedded receiver; then the per-engine figures and the
//! otlpx ÷ SDK ratios are printed. `otlpx-bench sink` runs just the receiver; `otlpx-bench config
//! --check [FILE]` prints the configuration an engine would run with here
//! (environment, file, defaults), each value with its source. Errors go to stderr
//! and make the exit status non-zero; nothing here panics on bad input.
#![deny(unsafe_code)]

mod outage;
mod run;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use run::options::{ChildArgs, RunArgs};

/// jemalloc, as a service under load would use: the SDK allocates per span,
/// and the system allocator would measure glibc as much as either engine.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// otlpx vs opentelemetry-rust: the same spans or log records, exported
/// over OTLP.
#[derive(Debug, Parser)]
#[command(name = "otlpx-bench", version, args_conflicts_with_subcommands = true)]
struct Cli {
    /// What to do; `run` when omitted.
    #[command(subcommand)]
    command: Option<Cmd>,
    /// The options of `run`, when no subcommand is given.
    #[command(flatten)]
    run: RunArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Cmd {
    /// Measure otlpx and/or the opentelemetry SDK exporting the same spans
    /// or log records (the default).
    Run(RunArgs),
    /// Run a standalone OTLP receiver that counts what it is sent, until
    /// Ctrl-C.
    Sink(SinkArgs),
    /// Print the effective otlpx configuration (the `OTEL_*` environment,
    /// the TOML file, the defaults), each value with its source.
    Config(ConfigArgs),
    /// Record through a receiver outage (up, down, up again): spans lost,
    /// record latency, recovery time and memory, per contender.
    Outage(outage::OutageArgs),
    /// One engine in a child process (internal).
    #[command(name = run::CHILD_SUBCOMMAND, hide = true)]
    Child(ChildArgs),
}

/// The options of `otlpx-bench sink`.
#[derive(Debug, Args)]
struct SinkArgs {
    /// The OTLP/gRPC port on 127.0.0.1 (0: any free port).
    #[arg(long, value_name = "P", default_value_t = 4317)]
    grpc_port: u16,
    /// The OTLP/HTTP port on 127.0.0.1 (0: any free port).
    #[arg(long, value_name = "Q", default_value_t = 4318)]
    http_port: u16,
    /// Decode every trace request in full (checks them; costs CPU).
    #[arg(long)]
    keep: bool,
    /// Decode every trace request and write each span to FILE as one JSON
    /// line (ids in hex, attributes as {key: value}, scope, resource),
    /// flushed after each request.
    #[arg(long, value_name = "FILE")]
    dump: Option<std::path::PathBuf>,
}

/// The options of `otlpx-bench config`.
#[derive(Debug, Args)]
struct ConfigArgs {
    /// Check the configuration and print it; exit non-zero if invalid.
    #[arg(long)]
    check: bool,
    /// The TOML file (default: the one `OTLPX_CONFIG` or `CONFIG_PATH`
    /// names, if any).
    file: Option<std::path::PathBuf>,
}

/// `otlpx-bench config --check [FILE]`.
fn config_main(args: &ConfigArgs) -> Result<(), run::BenchError> {
    if !args.check {
        return Err(run::BenchError::msg("`config` needs `--check`"));
    }
    // Strict: a check says what is wrong, where an engine would only warn.
    let mut builder = otlpx::Engine::builder().strict_env(true);
    if let Some(file) = &args.file {
        builder = builder.config_file(file);
    }
    match builder.effective_config() {
        Ok(config) => {
            print!("{config}");
            Ok(())
        }
        Err(e) => Err(run::BenchError::with_source("invalid configuration", e)),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => run::parent::main(&cli.run),
        Some(Cmd::Run(args)) => run::parent::main(&args),
        Some(Cmd::Child(args)) => run::child::main(&args),
        Some(Cmd::Config(args)) => config_main(&args),
        Some(Cmd::Outage(args)) => outage::main(&args),
        Some(Cmd::Sink(args)) => otlpx_bench::receiver::sink_main(
            args.grpc_port,
            args.http_port,
            args.keep,
            args.dump.as_deref(),
        )
        .map_err(|e| {
            run::BenchError::with_source(
                format!(
                    "running the sink on ports {} (gRPC) and {} (HTTP)",
                    args.grpc_port, args.http_port
                ),
                e,
            )
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("otlpx-bench: error: {}", e.report());
            ExitCode::FAILURE
        }
    }
}
