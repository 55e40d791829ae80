//! The health-body parser: a probe's response body (JSON, Spring/
//! MicroProfile/.NET/Go shapes) → overall status and named checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sidewatch::collect::health::checks::{parse, MAX_CHECKS};

fuzz_target!(|data: &[u8]| {
    if let Some(body) = parse(data) {
        assert!(
            body.checks.len() <= MAX_CHECKS,
            "{} checks",
            body.checks.len()
        );
    }
});
