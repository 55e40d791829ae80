//! StatsD intake throughput over real UDP (run by hand, not in CI):
//! starts the sidewatch binary with `[statsd]` on a random port, sends N
//! one-sample DogStatsD datagrams as fast as one thread can, and reports the
//! datagrams sidewatch received per CPU-second it spent (from
//! `/proc/PID/stat`), its wall rate and how many the kernel dropped.
//!
//!   cargo bench --bench statsd_udp -- [datagrams]     (default 2000000;
//!   10000 as a smoke run under `cargo test`)

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn metrics(admin: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", admin)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

fn received(admin: u16) -> Option<f64> {
    let text = metrics(admin)?;
    text.lines()
        .find(|l| l.starts_with("sidewatch_statsd_packets_total{outcome=\"ok\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test` this is a smoke run.
    let benching = std::env::args().any(|a| a == "--bench");
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(if benching { 2_000_000 } else { 10_000 });
    let (admin, statsd) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("sidewatch-statsd-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sidewatch.toml");
    std::fs::write(
        &config,
        format!(
            "[admin]\nlisten = \"127.0.0.1:{admin}\"\n[self_log]\nlevel = \"warn\"\n[process]\nenabled = false\n\
             [statsd]\nenabled = true\nlisten = \"127.0.0.1:{statsd}\"\n\
             [[statsd.mappings]]\nmatch = \"api.*.requests\"\nname = \"api_requests_total\"\nlabels = {{ endpoint = \"$1\" }}\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .args(["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .expect("sidewatch starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while received(admin).is_none() {
        assert!(Instant::now() < deadline, "sidewatch did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let packets: Vec<String> = (0..64)
        .map(|i| format!("api.e{}.requests:1|c|#env:prod,zone:z{}", i % 8, i % 3))
        .collect();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(("127.0.0.1", statsd)).unwrap();
    let cpu_before = cpu_seconds(child.id());
    let start = Instant::now();
    for i in 0..n {
        let _ = socket.send(packets[(i % 64) as usize].as_bytes());
    }
    let sent_in = start.elapsed();
    // Wait until the count stops moving.
    let mut last = -1.0;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = received(admin).unwrap_or(0.0);
        if now == last {
            break;
        }
        last = now;
    }
    let wall = start.elapsed().as_secs_f64() - 0.3;
    let cpu = cpu_seconds(child.id()) - cpu_before;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let got = last;
    println!(
        "sent {n} datagrams in {:.2} s ({:.0}/s); sidewatch received {got:.0} ({:.1} % dropped by the kernel)",
        sent_in.as_secs_f64(),
        n as f64 / sent_in.as_secs_f64(),
        100.0 * (1.0 - got / n as f64)
    );
    println!(
        "sidewatch: {cpu:.2} CPU-s → {:.0} datagrams per CPU-second; {:.0} datagrams/s wall",
        got / cpu.max(1e-9),
        got / wall
    );
}
