//! Each target for `IMDS_FUZZ_SECONDS` seconds (default 2): proptest inputs from its corpus,
//! random bytes and random JSON; a failing input is shrunk and reported. `scripts/fuzz` runs
//! this longer, in release.

// A wall-clock budget for a synchronous loop: no tokio clock to pause here.
#![allow(clippy::disallowed_types)]

use std::time::{Duration, Instant};

use imds_fuzz::{corpus, inputs, Target, TARGETS};
use proptest::test_runner::{Config, TestCaseError, TestRunner};

fn budget() -> Duration {
    let seconds = std::env::var("IMDS_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0_f64);
    Duration::from_secs_f64(seconds)
}

fn fuzz(name: &str) {
    let target: &Target = TARGETS.iter().find(|t| t.name == name).expect("a target of that name");
    let strategy = inputs(corpus(name).into_iter().map(|(_, bytes)| bytes).collect());
    let started = Instant::now();
    let mut cases = 0u64;
    // Rounds of a few hundred cases until the time is up: proptest has no time budget of its own.
    while started.elapsed() < budget() {
        let mut runner = TestRunner::new(Config { cases: 256, failure_persistence: None, ..Config::default() });
        let result = runner.run(&strategy, |input| {
            std::panic::catch_unwind(|| (target.run)(&input))
                .map_err(|_| TestCaseError::fail(format!("{name} panics on {:?}", String::from_utf8_lossy(&input))))
        });
        if let Err(failure) = result {
            panic!("{failure}");
        }
        cases += 256;
    }
    eprintln!("{name}: {cases} inputs in {:.1?}", started.elapsed());
}

#[test]
fn instance_parse() {
    fuzz("instance_parse");
}

#[test]
fn merge_patch() {
    fuzz("merge_patch");
}

#[test]
fn mmds_pointer() {
    fuzz("mmds_pointer");
}

#[test]
fn session_token() {
    fuzz("session_token");
}

#[test]
fn gce_query() {
    fuzz("gce_query");
}

#[test]
fn azure_query() {
    fuzz("azure_query");
}

#[test]
fn import_line() {
    fuzz("import_line");
}

#[test]
fn bound_listener() {
    fuzz("bound_listener");
}
