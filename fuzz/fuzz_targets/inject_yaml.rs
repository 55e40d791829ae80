//! `sidewatch inject` on arbitrary (multi-document) YAML, with options
//! picked by the first byte; what it writes must load as YAML again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sidewatch::inject::{run, yaml, Options};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let options = Options {
        native: selector & 1 == 0,
        port_takeover: selector & 2 != 0,
        app_port: (selector & 4 != 0).then(|| "http".to_owned()),
        log_path: (selector & 8 != 0).then(|| "/var/log/app".to_owned()),
        app_container: (selector & 16 != 0).then(|| "app".to_owned()),
        scrape_annotations: selector & 32 == 0,
        ..Options::default()
    };
    let inputs = [("fuzz.yaml".to_owned(), text.to_owned())];
    if let Ok(injected) = run(&inputs, &options) {
        if let Err(error) = yaml::load(&injected.yaml) {
            panic!(
                "inject wrote YAML that does not load: {error}\n{}",
                injected.yaml
            );
        }
    }
});
