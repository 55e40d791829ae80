//! The route normaliser: every line but the last is a template
//! (`route_templates`), the last a request path; also every line through
//! the template-less normaliser. A normalised route is bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sidewatch::telemetry::route::{is_id_like, RouteNormalizer, MAX_ROUTE_BYTES};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines: Vec<&str> = text.split('\n').collect();
    let path = lines.pop().unwrap_or_default();
    let templates: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let bare = RouteNormalizer::new(&[]).expect("no templates is valid");
    for line in text.split('\n') {
        check(&bare.normalize(line), 0);
        for segment in line.split('/') {
            let _ = is_id_like(segment);
        }
    }
    if let Ok(normalizer) = RouteNormalizer::new(&templates) {
        let longest = templates.iter().map(String::len).max().unwrap_or(0);
        check(&normalizer.normalize(path), longest);
    }
});

/// A route is a template (as long as the longest) or at most
/// `MAX_ROUTE_BYTES` plus the `/…` marker.
fn check(route: &str, longest_template: usize) {
    assert!(
        route.len() <= (MAX_ROUTE_BYTES + 4).max(longest_template),
        "route of {} bytes: {route:?}",
        route.len()
    );
}
