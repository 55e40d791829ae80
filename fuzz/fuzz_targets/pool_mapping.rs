//! The pool-JSON mapper: a pool-stats document read with every preset;
//! when the first line is a `[[pools]] mapping` object (JSON), the rest is
//! also read with that custom mapping.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sidewatch::collect::pool::mapping::read;
use sidewatch::collect::pool::presets::{mapping, resolve};
use sidewatch::config::{PoolMapping, Preset};

const PRESETS: [Preset; 5] = [
    Preset::Hikaricp,
    Preset::Sqlalchemy,
    Preset::GoSql,
    Preset::NodePostgres,
    Preset::Deadpool,
];

fuzz_target!(|data: &[u8]| {
    if let Ok(document) = serde_json::from_slice::<serde_json::Value>(data) {
        for preset in PRESETS {
            check(read(&document, &mapping(preset), 32));
        }
    }
    let Some(split) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let (head, body) = (&data[..split], &data[split + 1..]);
    let (Ok(overrides), Ok(document)) = (
        serde_json::from_slice::<PoolMapping>(head),
        serde_json::from_slice::<serde_json::Value>(body),
    ) else {
        return;
    };
    for preset in PRESETS.into_iter().chain([Preset::Custom]) {
        check(read(&document, &resolve(preset, &overrides), 32));
    }
});

fn check(
    result: Result<
        (Vec<sidewatch::collect::pool::mapping::PoolStats>, usize),
        sidewatch::collect::pool::mapping::ShapeError,
    >,
) {
    if let Ok((pools, _)) = result {
        assert!(pools.len() <= 32);
    }
}
