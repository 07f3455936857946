//! `otlpx-bench outage` end to end through the built binary, briefly: a
//! one-second outage at 5,000 spans a second for each contender. Every
//! run must print its JSON line; what was received plus what was lost must
//! be what was recorded; otlpx's own drop counters must account for every
//! span the receiver never got, and with the spool nothing may be lost.

use std::process::Command;

use serde_json::Value;

#[test]
fn a_short_outage_is_measured_for_every_contender() {
    let out = Command::new(env!("CARGO_BIN_EXE_otlpx-bench"))
        .args([
            "outage",
            "--contender",
            "otlpx,otlpx-spool,sdk",
            "--rate",
            "5000",
            "--up-before",
            "1",
            "--down",
            "1",
            "--up-after",
            "1",
        ])
        .output()
        .expect("the otlpx-bench binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let runs: Vec<Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let names: Vec<&str> = runs
        .iter()
        .filter_map(|r| r["contender"].as_str())
        .collect();
    assert_eq!(names, ["otlpx", "otlpx-spool", "sdk"], "{stdout}");
    assert!(
        stdout.contains("record ns p99, outage"),
        "the table: {stdout}"
    );

    for run in &runs {
        let n = |key: &str| {
            run.pointer(key)
                .and_then(Value::as_u64)
                .unwrap_or_else(|| panic!("{key} in {run}"))
        };
        // 3 s at 5,000 spans a second, on schedule.
        assert_eq!(n("/recorded"), 15_000, "{run}");
        assert_eq!(n("/received_unique") + n("/lost"), n("/recorded"), "{run}");
        assert!(run["recovery_s"].is_number(), "{run}");
        let lost_by_phase: i64 = ["before", "outage", "after"]
            .iter()
            .map(|p| run["lost_by_phase"][p].as_i64().unwrap())
            .sum();
        assert_eq!(lost_by_phase, n("/lost") as i64, "{run}");
        assert!(n("/record_ns/outage/p50") > 0, "{run}");
        if run["contender"] != "sdk" {
            assert_eq!(run["engine"]["identity_holds"], true, "{run}");
            assert_eq!(run["engine"]["flushed"], true, "{run}");
            assert_eq!(n("/engine/dropped_total"), n("/lost"), "{run}");
        }
    }
    let spool = &runs[1];
    assert_eq!(spool["lost"], 0, "{spool}");
}
