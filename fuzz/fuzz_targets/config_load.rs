//! The config loader: TOML or YAML text (first byte even: TOML, odd: YAML)
//! → typed, validated `Config`; a config that loads must also print
//! (`check-config` prints the resolved config as TOML).
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use sidewatch::config::{load_from_str, Format};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = if selector % 2 == 0 {
        Format::Toml
    } else {
        Format::Yaml
    };
    if let Ok(config) = load_from_str(text, format, &HashMap::new()) {
        if let Err(error) = toml::to_string_pretty(&config) {
            panic!("a valid config does not print: {error}");
        }
    }
});
