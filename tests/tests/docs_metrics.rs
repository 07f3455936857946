//! The monitoring docs against the engine, so that they cannot drift apart:
//! every metric that `docs/prometheus-alerts.yml` (in its rules' `expr`)
//! and `docs/grafana-dashboard.json` (in its targets and template
//! variables) query is one that the admin endpoint's `/metrics` renders
//! (`otlpx::telemetry::prometheus_text` over every signal), every metric
//! family it renders has a row in `docs/README.md`'s metric table, and
//! every row there is a family it renders, with the same type and labels.
//! A renamed or added metric fails here, not silently in someone's alerts.
//!
//! Families with a `signal` label are per signal, and the docs must keep
//! them apart: every `by (…)` and `on (…)` of an alert that queries one
//! keeps `signal`, and every selector of one in a dashboard panel filters
//! by the dashboard's `$signal` variable.
//!
//! Also checks what a loader would refuse or a reader would miss: each
//! rule has `alert`, `expr`, `for`, a severity and a summary and
//! description; each dashboard target has an expression and the dashboard
//! has its data source, `job`, `instance` and `signal` variables. PromQL
//! syntax is not checked here (no parser in the dependency tree);
//! `promtool check rules` does that where Prometheus is installed.

use otlpx::Signal;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use yaml_rust2::{Yaml, YamlLoader};

/// The suffixes of a histogram's series.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

fn docs_file(name: &str) -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    (path, text)
}

/// Every metric-name token of `expr` (`otlpx_[a-z_]+`, not preceded by a
/// character that would make it the tail of a longer name), with what
/// follows it (from its end to the end of `expr`). A label value of that
/// shape would count too; the docs have none.
fn metric_tokens(expr: &str) -> Vec<(&str, &str)> {
    const PREFIX: &str = "otlpx_";
    let bytes = expr.as_bytes();
    let is_name_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut tokens = Vec::new();
    let mut from = 0;
    while let Some(at) = expr[from..].find(PREFIX) {
        let start = from + at;
        let mut end = start + PREFIX.len();
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        if end > start + PREFIX.len() && (start == 0 || !is_name_byte(bytes[start - 1])) {
            tokens.push((&expr[start..end], &expr[end..]));
        }
        from = end;
    }
    tokens
}

/// Adds to `out` every metric name of `expr` (see [`metric_tokens`]).
fn metric_names(expr: &str, out: &mut BTreeSet<String>) {
    out.extend(
        metric_tokens(expr)
            .into_iter()
            .map(|(name, _)| name.to_owned()),
    );
}

/// The label lists of every `by (…)` and `on (…)` clause in `expr`.
fn grouping_clauses(expr: &str) -> Vec<Vec<&str>> {
    let mut clauses = Vec::new();
    for keyword in ["by", "on"] {
        let bytes = expr.as_bytes();
        let mut from = 0;
        while let Some(at) = expr[from..].find(keyword) {
            let start = from + at;
            from = start + keyword.len();
            let word_start = start == 0
                || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            let rest = expr[from..].trim_start();
            if !word_start || !rest.starts_with('(') {
                continue;
            }
            let inside = &rest[1..rest.find(')').expect("a closing parenthesis")];
            clauses.push(
                inside
                    .split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect(),
            );
        }
    }
    clauses
}

/// What the engine's Prometheus text declares and contains.
struct Exposition {
    /// Family name → type, from the `# TYPE` lines.
    families: BTreeMap<String, String>,
    /// Sample name → the sample lines' values, from the sample lines.
    samples: BTreeMap<String, Vec<String>>,
    /// Family name → the names of its samples' labels (a histogram's `le`
    /// left out), from the sample lines.
    labels: BTreeMap<String, BTreeSet<String>>,
}

/// The label names of a sample line's `{…}` (`rest` starts after the
/// `{`), quoted values skipped with their escapes.
fn label_names(mut rest: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if rest.starts_with('}') {
            return names;
        }
        let (name, after) = rest.split_once("=\"").expect("a label name, then =\"");
        names.insert(name.trim().to_owned());
        let mut escaped = false;
        let close = after
            .char_indices()
            .find(|&(_, c)| {
                let closes = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                closes
            })
            .expect("a closing quote")
            .0;
        rest = &after[close + 1..];
    }
}

impl Exposition {
    fn parse(text: &str) -> Self {
        let mut families = BTreeMap::new();
        let mut samples: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                    families.insert(name.to_owned(), kind.to_owned());
                }
            } else if !line.is_empty() && !line.starts_with('#') {
                let name_end = line.find(['{', ' ']).unwrap_or(line.len());
                // The value follows the labels (or the name); a timestamp
                // may follow the value.
                let after_labels = match line.rfind('}') {
                    Some(close) => &line[close + 1..],
                    None => &line[name_end..],
                };
                let value = after_labels.split_whitespace().next().unwrap_or("");
                let name = &line[..name_end];
                samples
                    .entry(name.to_owned())
                    .or_default()
                    .push(value.to_owned());
                let mut names = match line[name_end..].strip_prefix('{') {
                    Some(rest) => label_names(rest),
                    None => BTreeSet::new(),
                };
                names.remove("le");
                let family = HISTOGRAM_SUFFIXES
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .filter(|family| families.contains_key(*family))
                    .unwrap_or(name);
                labels.entry(family.to_owned()).or_default().extend(names);
            }
        }
        Self {
            families,
            samples,
            labels,
        }
    }

    /// The family a query's metric `name` belongs to (a histogram's for
    /// its `_bucket`, `_sum` and `_count`), if the engine serves it.
    fn family_of<'n>(&self, name: &'n str) -> Option<&'n str> {
        if self.families.contains_key(name) {
            return Some(name);
        }
        HISTOGRAM_SUFFIXES.iter().find_map(|suffix| {
            name.strip_suffix(suffix)
                .filter(|family| self.is_histogram(family))
        })
    }

    /// Whether the family of metric `name` has a `signal` label.
    fn per_signal(&self, name: &str) -> bool {
        self.family_of(name)
            .and_then(|family| self.labels.get(family))
            .is_some_and(|labels| labels.contains("signal"))
    }

    fn is_histogram(&self, family: &str) -> bool {
        matches!(
            self.families.get(family).map(String::as_str),
            Some("histogram" | "summary")
        )
    }

    /// Whether a query naming `name` selects something the engine serves:
    /// a sample name, a declared family that is not a histogram (a bare
    /// histogram name selects nothing), or a histogram's
    /// `_bucket`/`_sum`/`_count`.
    fn serves(&self, name: &str) -> bool {
        if self.samples.contains_key(name) {
            return true;
        }
        if self.families.contains_key(name) {
            return !self.is_histogram(name);
        }
        HISTOGRAM_SUFFIXES.iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|family| self.is_histogram(family))
        })
    }
}

/// The engine's Prometheus text, every signal's as the admin endpoint
/// serves it, after one recorded span, one log record and one metric
/// (written as the metrics API will, there being none yet); with two
/// endpoints (nothing listens there), so that the per-endpoint families
/// are served too. Rendered once for every test here.
fn engine_exposition() -> &'static (String, Exposition) {
    static EXPOSITION: OnceLock<(String, Exposition)> = OnceLock::new();
    EXPOSITION.get_or_init(|| {
        let engine = otlpx::Engine::builder()
            .endpoints(["http://127.0.0.1:1", "http://127.0.0.1:2"])
            // Its requests fail: no need to wait for them at the drop.
            .shutdown_timeout(Duration::from_millis(10))
            .build()
            .expect("an engine with two endpoints builds");
        engine.tracer("t", "").start("s").end();
        engine
            .logger("l", "")
            .emit(&otlpx::logs::LogRecord::new(otlpx::logs::Severity::INFO).body("m"));
        // An empty `Metric` message: the pipeline does not look into it.
        engine.__not_api_record_metric("m", "", &[]).unwrap();
        let text =
            otlpx::telemetry::prometheus_text(&Signal::ALL.map(|s| (s, engine.signal_stats(s))));
        let exposition = Exposition::parse(&text);
        (text, exposition)
    })
}

/// Each alert rule's name and expression, after checking each rule's
/// shape.
fn alert_exprs() -> Vec<(String, String)> {
    let (path, text) = docs_file("prometheus-alerts.yml");
    let docs = YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
    assert_eq!(docs.len(), 1, "{}: one YAML document", path.display());
    let groups = docs[0]["groups"]
        .as_vec()
        .unwrap_or_else(|| panic!("{}: no `groups:` list", path.display()));
    assert!(!groups.is_empty(), "{}: no groups", path.display());
    let str_of = |y: &Yaml, what: &str, rule: &str| -> String {
        match y.as_str() {
            Some(s) if !s.trim().is_empty() => s.to_owned(),
            _ => panic!("{}: rule {rule}: `{what}` missing or empty", path.display()),
        }
    };
    let mut exprs = Vec::new();
    let mut alerts = BTreeSet::new();
    for group in groups {
        let group_name = str_of(&group["name"], "name", "(group)");
        let rules = group["rules"]
            .as_vec()
            .unwrap_or_else(|| panic!("{}: group {group_name}: no `rules:`", path.display()));
        for rule in rules {
            let alert = str_of(&rule["alert"], "alert", "(unnamed)");
            assert!(
                alerts.insert(alert.clone()),
                "{}: alert {alert} defined twice",
                path.display()
            );
            let expr = str_of(&rule["expr"], "expr", &alert);
            let for_ = str_of(&rule["for"], "for", &alert);
            let unit_at = for_.len().saturating_sub(1);
            assert!(
                for_[..unit_at].bytes().all(|b| b.is_ascii_digit())
                    && unit_at > 0
                    && matches!(&for_[unit_at..], "s" | "m" | "h" | "d"),
                "{}: rule {alert}: `for: {for_}` is not a duration like 5m",
                path.display()
            );
            let severity = str_of(&rule["labels"]["severity"], "labels.severity", &alert);
            assert!(
                matches!(severity.as_str(), "warning" | "critical"),
                "{}: rule {alert}: severity {severity:?}",
                path.display()
            );
            str_of(
                &rule["annotations"]["summary"],
                "annotations.summary",
                &alert,
            );
            str_of(
                &rule["annotations"]["description"],
                "annotations.description",
                &alert,
            );
            exprs.push((alert, expr));
        }
    }
    exprs
}

/// The metric names in the alert rules' expressions.
fn alert_metric_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (_, expr) in alert_exprs() {
        metric_names(&expr, &mut names);
    }
    names
}

/// Adds to `out` every string under a key `expr`, `query` or `definition`
/// anywhere in `value`: target expressions and template-variable queries.
fn dashboard_queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "query" | "definition", Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_queries(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_queries(v, out)),
        _ => {}
    }
}

/// The dashboard, after checking its shape.
fn dashboard() -> Value {
    let (path, text) = docs_file("grafana-dashboard.json");
    let dashboard: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
    assert!(
        dashboard["schemaVersion"].as_u64().is_some(),
        "{}: no schemaVersion",
        path.display()
    );
    let variables: BTreeSet<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no templating.list", path.display()))
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for wanted in ["DS_PROMETHEUS", "job", "instance", "signal"] {
        assert!(
            variables.contains(wanted),
            "{}: no `{wanted}` variable (has {variables:?})",
            path.display()
        );
    }
    let panels = dashboard["panels"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no panels", path.display()));
    let mut ids = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        let id = panel["id"].as_u64();
        assert!(
            id.is_some_and(|id| ids.insert(id)),
            "{}: panel {title:?}: missing or repeated id",
            path.display()
        );
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
        assert!(
            !targets.is_empty(),
            "{}: panel {title:?} has no targets",
            path.display()
        );
        for target in targets {
            assert!(
                target["expr"]
                    .as_str()
                    .is_some_and(|e| !e.trim().is_empty()),
                "{}: panel {title:?}: a target without `expr`",
                path.display()
            );
        }
    }
    dashboard
}

/// The metric names in the dashboard's queries.
fn dashboard_metric_names() -> BTreeSet<String> {
    let mut queries = Vec::new();
    dashboard_queries(&dashboard(), &mut queries);
    let mut names = BTreeSet::new();
    for query in &queries {
        metric_names(query, &mut names);
    }
    names
}

/// Each panel's title and its targets' expressions.
fn panel_exprs() -> Vec<(String, String)> {
    let dashboard = dashboard();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                exprs.push((title.to_owned(), expr.to_owned()));
            }
        }
    }
    exprs
}

/// Panics listing every name in `names` that the engine does not serve.
fn assert_served(file: &str, names: &BTreeSet<String>, exposition: &Exposition, text: &str) {
    assert!(!names.is_empty(), "{file}: no otlpx_ metric in any query");
    let missing: Vec<&String> = names.iter().filter(|n| !exposition.serves(n)).collect();
    assert!(
        missing.is_empty(),
        "docs/{file} queries metrics the engine does not serve: {missing:?}\n\
         (a histogram is queried as <name>_bucket, _sum or _count)\n\
         the engine's /metrics text:\n{text}"
    );
}

#[test]
fn alert_rules_query_only_served_metrics() {
    let (text, exposition) = engine_exposition();
    assert_served(
        "prometheus-alerts.yml",
        &alert_metric_names(),
        exposition,
        text,
    );
}

#[test]
fn dashboard_queries_only_served_metrics() {
    let (text, exposition) = engine_exposition();
    assert_served(
        "grafana-dashboard.json",
        &dashboard_metric_names(),
        exposition,
        text,
    );
}

#[test]
fn alerts_keep_signals_apart() {
    let (text, exposition) = engine_exposition();
    let mut checked = 0;
    for (alert, expr) in alert_exprs() {
        let names = metric_tokens(&expr);
        if !names.iter().any(|(name, _)| exposition.per_signal(name)) {
            continue;
        }
        checked += 1;
        for clause in grouping_clauses(&expr) {
            assert!(
                clause.contains(&"signal"),
                "docs/prometheus-alerts.yml: {alert} queries per-signal metrics but \
                 groups or matches by {clause:?}, without `signal`:\n{expr}\n{text}"
            );
        }
    }
    assert!(checked > 0, "no alert queries a per-signal metric");
}

#[test]
fn dashboard_panels_filter_by_the_signal_variable() {
    let (_, exposition) = engine_exposition();
    let mut checked = 0;
    for (title, expr) in panel_exprs() {
        for (name, after) in metric_tokens(&expr) {
            if !exposition.per_signal(name) {
                continue;
            }
            checked += 1;
            let selector = after
                .strip_prefix('{')
                .and_then(|rest| rest.split_once('}'))
                .map_or("", |(inside, _)| inside);
            assert!(
                selector.contains("signal=~\"$signal\""),
                "docs/grafana-dashboard.json: panel {title:?}: {name} without \
                 signal=~\"$signal\" in its selector:\n{expr}"
            );
        }
    }
    assert!(checked > 0, "no panel queries a per-signal metric");
}

/// The rows of the `## Metrics` table of `readme`: each metric's name,
/// the label names in its `{…}`, and its type.
fn readme_rows(readme: &str) -> Vec<(String, BTreeSet<String>, String)> {
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Metrics\n"))
        .expect("docs/README.md has a `## Metrics` section");
    let mut rows = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let metric = cells[0].trim_start_matches("| ").trim_matches('`');
        let (name, labels) = match metric.split_once('{') {
            Some((name, labels)) => (
                name,
                labels
                    .trim_end_matches('}')
                    .split(',')
                    .map(|l| l.trim().to_owned())
                    .collect(),
            ),
            None => (metric, BTreeSet::new()),
        };
        rows.push((name.to_owned(), labels, cells[1].to_owned()));
    }
    rows
}

#[test]
fn readme_documents_every_served_family_and_only_those() {
    let (text, exposition) = engine_exposition();
    assert!(
        !exposition.families.is_empty(),
        "the /metrics text declares no family (`# TYPE` lines):\n{text}"
    );
    // The one recorded span, log record and metric are there, each under
    // its signal: the text renders this engine's counters, not a template.
    let recorded = exposition.samples.get("otlpx_items_recorded_total");
    assert!(
        recorded.is_some_and(|values| {
            values.len() == Signal::ALL.len()
                && values
                    .iter()
                    .all(|v| v.parse::<f64>().is_ok_and(|v| v == 1.0))
        }),
        "otlpx_items_recorded_total after one span, log record and metric: {recorded:?}\n{text}"
    );
    let (path, readme) = docs_file("README.md");
    let rows = readme_rows(&readme);
    // A counter family may be declared with or without `_total`; the
    // table names the series.
    let row_of = |family: &str| {
        rows.iter()
            .find(|(name, ..)| name == family || *name == format!("{family}_total"))
    };
    let undocumented: Vec<&String> = exposition
        .families
        .keys()
        .filter(|family| family.starts_with("otlpx_") && row_of(family).is_none())
        .collect();
    assert!(
        undocumented.is_empty(),
        "{} has no row for {undocumented:?}",
        path.display()
    );
    for (name, labels, kind) in &rows {
        let family = exposition
            .families
            .keys()
            .find(|family| name == *family || *name == format!("{family}_total"))
            .unwrap_or_else(|| {
                panic!(
                    "{}: a row for {name}, which the engine does not serve:\n{text}",
                    path.display()
                )
            });
        assert_eq!(
            &exposition.families[family],
            kind,
            "{}: the type of {name}",
            path.display()
        );
        let served = exposition.labels.get(family).cloned().unwrap_or_default();
        assert_eq!(
            labels,
            &served,
            "{}: the labels of {name} (Prometheus adds job and instance; \
             a histogram's le is left out)",
            path.display()
        );
    }
    let mut names: Vec<&String> = rows.iter().map(|(name, ..)| name).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(
        before,
        names.len(),
        "{}: a metric with two rows",
        path.display()
    );
}

#[test]
fn metric_names_finds_whole_names_only() {
    let mut names = BTreeSet::new();
    metric_names(
        "sum(rate(otlpx_a_total{x=\"otlpx_\"}[5m])) / my_otlpx_b + otlpx_c_bucket",
        &mut names,
    );
    let expected: BTreeSet<String> = ["otlpx_a_total", "otlpx_c_bucket"]
        .map(str::to_owned)
        .into();
    assert_eq!(names, expected);
}

#[test]
fn grouping_clauses_finds_by_and_on_only() {
    let clauses = grouping_clauses(
        "sum by (job, signal) (rate(otlpx_a_bytes[5m])) / on(job) group_left \
         sum without (x) (otlpx_b) / ignoring (reason) otlpx_c",
    );
    assert_eq!(clauses, [vec!["job", "signal"], vec!["job"]]);
}
