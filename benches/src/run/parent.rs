//! `otlpx-bench run`: starts the embedded receiver (unless `--endpoint`
//! names one), runs each engine in a child process of its own, and prints
//! their results and ratios.
//!
//! Each child is this same executable with the hidden `__child` subcommand
//! and the validated plan; it prints one JSON line, which the parent reads,
//! completes with `receiver_items` (the receiver's count of the run's
//! signal, spans or log records, gained while that child ran) and prints,
//! as a table or as the same JSON line. Only
//! result lines go to stdout with `--json`; the progress bar, warnings and
//! errors go to stderr.

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use otlpx_bench::receiver::{Receiver, ReceiverConfig};

use super::error::{BenchError, Context};
use super::options::{EngineKind, Length, Plan, Protocol, RunArgs};
use super::report::{EngineReport, ratios_table};

/// How often the progress bar is redrawn and the child polled.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The most worker threads the embedded receiver gets: it counts items by
/// walking the wire format, so a few threads keep up with any exporter
/// here; more would only take CPUs from the engine under test.
const MAX_RECEIVER_THREADS: usize = 2;

/// Runs `otlpx-bench run`.
///
/// # Errors
///
/// When an option is invalid, the receiver cannot start, a child cannot be
/// spawned, fails or prints no valid result, or stdout cannot be written.
pub fn main(args: &RunArgs) -> Result<(), BenchError> {
    let plan = args.plan()?;
    let (receiver, endpoint) = match &args.endpoint {
        Some(url) => {
            check_endpoint(url)?;
            (None, url.trim_end_matches('/').to_owned())
        }
        None => {
            let r = start_receiver()?;
            let endpoint = match plan.protocol {
                Protocol::Grpc => r.grpc_endpoint(),
                Protocol::Http => r.http_endpoint(),
            };
            (Some(r), endpoint)
        }
    };

    let mut out = std::io::stdout().lock();
    if !args.json {
        writeln!(out, "{}", describe(&plan, &endpoint, receiver.is_some()))
            .context("writing to stdout")?;
    }
    let mut reports = Vec::new();
    for &kind in args.engine.kinds() {
        let report = run_child(kind, &plan, &endpoint, receiver.as_ref(), args.json)?;
        if report.recorded > 0 && report.exported == 0 {
            eprintln!(
                "otlpx-bench: warning: {} exported none of its {} {} to {endpoint}; \
                 is a receiver listening there, speaking {}?",
                kind.name(),
                report.recorded,
                plan.signal.items(),
                plan.protocol.name()
            );
        }
        if args.json {
            writeln!(out, "{}", report.to_json_line())
        } else {
            writeln!(out, "{}", report.to_table())
        }
        .and_then(|()| out.flush())
        .context("writing to stdout")?;
        reports.push(report);
    }
    if let [otlpx, sdk] = reports.as_slice()
        && !args.json
    {
        writeln!(out, "{}", ratios_table(otlpx, sdk)).context("writing to stdout")?;
    }
    Ok(())
}

/// Checks that `url` is an absolute `http://` or `https://` URL.
fn check_endpoint(url: &str) -> Result<(), BenchError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| BenchError::with_source(format!("--endpoint {url:?} is not a URL"), e))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => Ok(()),
        _ => Err(BenchError::msg(format!(
            "--endpoint {url:?} must be an http:// or https:// URL with a host, \
             such as http://127.0.0.1:4317"
        ))),
    }
}

/// Starts the embedded receiver on free ports of 127.0.0.1.
fn start_receiver() -> Result<Receiver, BenchError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_RECEIVER_THREADS);
    Receiver::start(ReceiverConfig {
        io_threads: threads,
        ..ReceiverConfig::default()
    })
    .context("starting the embedded OTLP receiver")
}

/// The header printed above the tables.
fn describe(plan: &Plan, endpoint: &str, embedded: bool) -> String {
    let items = plan.signal.items();
    let length = match plan.length {
        Length::Duration(d) => format!("{} s", d.as_secs_f64()),
        Length::Items(n) => format!("{n} {items}"),
    };
    let rate = match plan.rate {
        0 => "as fast as possible".to_owned(),
        r => format!("{r} {items}/s"),
    };
    format!(
        "otlpx-bench run: {length}, {} producer threads, {rate}, {} attributes per {}\n\
         export: OTLP/{} to {endpoint}{}, compression {}\n",
        plan.threads,
        plan.attrs,
        plan.signal.item(),
        plan.protocol.name(),
        if embedded { " (embedded receiver)" } else { "" },
        plan.compression.name(),
    )
}

/// Runs `kind` in a child process and returns its report, `receiver_items`
/// filled in when there is a `receiver`.
fn run_child(
    kind: EngineKind,
    plan: &Plan,
    endpoint: &str,
    receiver: Option<&Receiver>,
    quiet: bool,
) -> Result<EngineReport, BenchError> {
    let exe = std::env::current_exe().context("finding this program's executable")?;
    let signal = plan.signal.receiver();
    let items_before = receiver.map(|r| r.counts().items(signal));
    let mut child = Command::new(&exe)
        .args(plan.child_args(kind, endpoint))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context(format!("starting the {} child process", kind.name()))?;
    let Some(mut stdout) = child.stdout.take() else {
        return Err(BenchError::msg("the child's stdout was not captured"));
    };
    // The child prints one short line at its very end; read it on a thread
    // all the same, so that no child can block on a full pipe.
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });

    let progress = Progress::new(kind, plan, quiet, receiver.is_some());
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {
                let items = receiver
                    .zip(items_before)
                    .map(|(r, before)| r.counts().items(signal).saturating_sub(before));
                progress.update(start.elapsed(), items);
                std::thread::sleep(POLL_INTERVAL);
            }
            Err(e) => {
                // Do not leave the child running.
                let _ = child.kill();
                let _ = child.wait();
                return Err(BenchError::with_source(
                    format!("waiting for the {} child process", kind.name()),
                    e,
                ));
            }
        }
    };
    progress.finish();
    let output = reader
        .join()
        .map_err(|_| BenchError::msg("the thread reading the child's output panicked"))?
        .context(format!("reading the {} child's output", kind.name()))?;
    if !status.success() {
        return Err(BenchError::msg(format!(
            "the {} run failed ({status}); its error is printed above",
            kind.name()
        )));
    }
    let line = output
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| BenchError::msg(format!("the {} child printed no result", kind.name())))?;
    let mut report = EngineReport::from_json_line(line)
        .context(format!("reading the {} child's result", kind.name()))?;
    report.receiver_items = receiver
        .zip(items_before)
        .map(|(r, before)| r.counts().items(signal).saturating_sub(before));
    Ok(report)
}

/// The progress bar shown on stderr while a child runs: elapsed time for
/// `--duration`, the receiver's item count for `--items` (a spinner when
/// the endpoint is someone else's), nothing with `--json`.
struct Progress {
    bar: ProgressBar,
    length: Length,
}

impl Progress {
    /// A bar for running `kind` with `plan`; hidden when `quiet`.
    fn new(kind: EngineKind, plan: &Plan, quiet: bool, counts_items: bool) -> Self {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            let (len, template) = match plan.length {
                Length::Duration(d) => (
                    u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                    "{prefix:>8} [{bar:40}] {msg}",
                ),
                Length::Items(n) if counts_items => {
                    (n, "{prefix:>8} [{bar:40}] {human_pos}/{human_len} {msg}")
                }
                Length::Items(_) => (0, "{prefix:>8} {spinner} {elapsed} {msg}"),
            };
            let bar = ProgressBar::with_draw_target(
                (len > 0).then_some(len),
                ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(kind.name());
            if counts_items && matches!(plan.length, Length::Items(_)) {
                bar.set_message(format!("{} received", plan.signal.items()));
            }
            bar
        };
        Self {
            bar,
            length: plan.length,
        }
    }

    /// Shows `elapsed` time and, when known, the `items` received so far.
    fn update(&self, elapsed: Duration, items: Option<u64>) {
        match self.length {
            Length::Duration(d) => {
                let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
                self.bar.set_position(ms);
                if elapsed < d {
                    self.bar.set_message(format!(
                        "{:.1}/{:.1} s",
                        elapsed.as_secs_f64(),
                        d.as_secs_f64()
                    ));
                } else {
                    self.bar.set_message("flushing and shutting down");
                }
            }
            Length::Items(_) => match items {
                Some(n) => self.bar.set_position(n),
                None => self.bar.tick(),
            },
        }
    }

    /// Removes the bar.
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_http_urls() {
        assert!(check_endpoint("http://127.0.0.1:4317").is_ok());
        assert!(check_endpoint("https://collector.example:4318/").is_ok());
        assert!(check_endpoint("127.0.0.1:4317").is_err());
        assert!(check_endpoint("ftp://host").is_err());
        assert!(check_endpoint("http://").is_err());
        assert!(check_endpoint("not a url").is_err());
    }
}
