//! Running the real binary with one sink and reading its `/metrics`.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Layout;

pub const BIN: &str = env!("CARGO_BIN_EXE_sidewatch");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A config tailing `logs/app.log` into one sink described by `sink` TOML.
pub fn config(layout: &Layout, admin: u16, sink: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[admin]
listen = "127.0.0.1:{admin}"
[process]
enabled = false
[shutdown]
grace_period = "1s"
[logs]
state_dir = "{state}"
queue_batches = 4
[[logs.sources]]
name = "app"
include = ["{logs}/app.log"]
scan_interval = "100ms"
poll_interval = "20ms"
[[logs.sinks]]
{sink}
"#,
        state = layout.state().display(),
        logs = layout.logs().display(),
    );
    let path = layout.dir.path().join("sidewatch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn spawn(config: &Path) -> Child {
    Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .env_remove("SIDEWATCH_CONFIG")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sidewatch starts")
}

pub fn stop(mut child: Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0), "clean exit");
}

/// `GET /metrics` from the admin port (plain std, no runtime needed).
pub fn metrics(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ =
                stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut text = String::new();
            if stream.read_to_string(&mut text).is_ok() && text.contains("sidewatch_") {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "no /metrics on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sample `name{labels}` (labels exactly, any order) in Prometheus text.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    wanted.sort();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (sample_name, label_text) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if sample_name != name {
                return None;
            }
            let mut found: Vec<String> = label_text
                .split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
            found.sort();
            (found == wanted).then(|| value.parse().ok()).flatten()
        })
}

/// Like [`sample`], panicking when it is missing.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or_else(|| panic!("{name}{labels:?} missing"))
}

pub fn append(path: &Path, lines: impl Iterator<Item = String>) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        file.write_all(l.as_bytes()).unwrap();
    }
}
