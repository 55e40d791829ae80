//! Securing the admin endpoints: TLS with a test CA (made by `openssl`),
//! certificate rotation picked up without a restart and a broken rotation
//! keeping the old certificate, mutual TLS, bearer and basic auth (401 with
//! `WWW-Authenticate`, probes left open), and the size limits (431, 413) of
//! the admin listener and the HTTP log intake, each counted.

mod support;
mod test_certs;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{client, metric, Sidewatch};

/// An HTTPS client trusting only `ca`, opening a new connection per request
/// (so a rotated certificate is seen at once), optionally with a client
/// certificate.
fn https_client(ca: &Path, identity: Option<&Path>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5));
    if let Some(dir) = identity {
        let mut pem = std::fs::read(dir.join("server.crt")).unwrap();
        pem.extend(std::fs::read(dir.join("server.key")).unwrap());
        builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

/// A directory with a fresh test CA and a `localhost` certificate from it.
fn ca_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    test_certs::certificates(dir.path());
    dir
}

/// Replaces `path` atomically (write beside it, rename), as a Secret volume update does.
fn replace(path: &Path, content: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Installs `cert` and `key` as the served files.
fn install(live: &Path, cert: &Path, key: &Path) {
    replace(&live.join("tls.crt"), &std::fs::read(cert).unwrap());
    replace(&live.join("tls.key"), &std::fs::read(key).unwrap());
}

async fn works(client: &reqwest::Client, url: &str) -> bool {
    matches!(client.get(url).send().await, Ok(r) if r.status() == 200)
}

/// Polls until `check` holds; panics with `what` after 10 s.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, check: impl Fn() -> F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn scrape(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_rotation_is_picked_up_and_a_broken_one_keeps_the_old_certificate() {
    let (first, second) = (ca_dir(), ca_dir());
    let live = tempfile::tempdir().unwrap();
    let (c1, k1) = (
        first.path().join("server.crt"),
        first.path().join("server.key"),
    );
    install(live.path(), &c1, &k1);
    let sidewatch = Sidewatch::start(&format!(
        "[admin.tls]\ncert_file = \"{0}/tls.crt\"\nkey_file = \"{0}/tls.key\"\nreload_interval = \"200ms\"\n",
        live.path().display()
    ))
    .await;
    let url = format!("https://localhost:{}/metrics", sidewatch.addr.port());
    let old = https_client(&first.path().join("ca.crt"), None);
    let new = https_client(&second.path().join("ca.crt"), None);
    assert!(works(&old, &url).await, "the first certificate serves");
    assert!(
        !works(&new, &url).await,
        "a client of another CA is refused"
    );
    let ip_url = format!("https://127.0.0.1:{}/healthz", sidewatch.addr.port());
    assert!(works(&old, &ip_url).await, "the IP SAN works too");
    let plain = client()
        .get(format!("http://{}/metrics", sidewatch.addr))
        .send()
        .await;
    assert!(
        !matches!(&plain, Ok(r) if r.status() == 200),
        "plain HTTP must not be served"
    );

    // cert-manager rotation: the new pair replaces the files; no restart.
    let (c2, k2) = (
        second.path().join("server.crt"),
        second.path().join("server.key"),
    );
    install(live.path(), &c2, &k2);
    eventually("the rotated certificate serves", || works(&new, &url)).await;
    assert!(!works(&old, &url).await, "the old certificate is gone");

    // A broken rotation (certificate and key that do not match, then no
    // certificate at all) keeps the last good pair serving, counted.
    install(live.path(), &c1, &k2);
    let reload = |outcome| {
        [
            ("listener", "admin"),
            ("file", "certificate"),
            ("outcome", outcome),
        ]
    };
    eventually("the mismatched pair is counted", || async {
        metric(
            &scrape(&new, &url).await,
            "sidewatch_admin_file_reloads_total",
            &reload("error"),
        ) == Some(1.0)
    })
    .await;
    replace(
        &live.path().join("tls.crt"),
        b"-----BEGIN CERTIFICATE-----\nnot base64\n",
    );
    eventually("the garbage certificate is counted", || async {
        metric(
            &scrape(&new, &url).await,
            "sidewatch_admin_file_reloads_total",
            &reload("error"),
        ) == Some(2.0)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = scrape(&new, &url).await;
    assert_eq!(
        metric(
            &text,
            "sidewatch_admin_file_reloads_total",
            &reload("error")
        ),
        Some(2.0),
        "a failure is counted once, not at every check"
    );
    assert_eq!(
        metric(&text, "sidewatch_admin_file_reloads_total", &reload("ok")),
        Some(1.0)
    );
    assert!(
        metric(
            &text,
            "sidewatch_admin_rejected_total",
            &[("listener", "admin"), ("reason", "tls_handshake")]
        )
        .is_some_and(|v| v >= 2.0),
        "the refused handshakes are counted:\n{text}"
    );
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_a_client_certificate_from_the_client_ca() {
    let (ca, other) = (ca_dir(), ca_dir());
    let d = ca.path().display();
    let sidewatch = Sidewatch::start(&format!(
        "[admin.tls]\ncert_file = \"{d}/server.crt\"\nkey_file = \"{d}/server.key\"\nclient_ca_file = \"{d}/ca.crt\"\n"
    ))
    .await;
    let url = format!("https://localhost:{}/metrics", sidewatch.addr.port());
    let ca_crt = ca.path().join("ca.crt");
    assert!(works(&https_client(&ca_crt, Some(ca.path())), &url).await);
    assert!(
        !works(&https_client(&ca_crt, None), &url).await,
        "no client certificate"
    );
    assert!(
        !works(&https_client(&ca_crt, Some(other.path())), &url).await,
        "a client certificate of another CA"
    );
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_from_a_file_protects_metrics_and_status_and_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first-token\n").unwrap();
    let sidewatch = Sidewatch::start(&format!(
        "[admin.auth]\ntoken_file = \"{}\"\nreload_interval = \"200ms\"\n",
        token.display()
    ))
    .await;
    let base = format!("http://{}", sidewatch.addr);
    let get = |path: &str, token: Option<&str>| {
        let mut request = client().get(format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap() }
    };
    for path in ["/metrics", "/status"] {
        for given in [None, Some("wrong"), Some("first-token-and-more")] {
            let response = get(path, given).await;
            assert_eq!(response.status(), 401, "{path} with {given:?}");
            assert_eq!(
                response.headers()["www-authenticate"],
                r#"Bearer realm="sidewatch""#
            );
        }
        assert_eq!(get(path, Some("first-token")).await.status(), 200, "{path}");
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            get(path, None).await.status(),
            200,
            "{path} stays open for probes"
        );
    }
    // A rotated Secret: the new token is required without a restart.
    replace(&token, b"second-token");
    eventually("the new token is accepted", || async {
        get("/metrics", Some("second-token")).await.status() == 200
    })
    .await;
    assert_eq!(get("/metrics", Some("first-token")).await.status(), 401);
    // A token file that disappears keeps the last token.
    std::fs::remove_file(&token).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let text = get("/metrics", Some("second-token"))
        .await
        .text()
        .await
        .unwrap();
    let labels = |outcome| {
        [
            ("listener", "admin"),
            ("file", "token"),
            ("outcome", outcome),
        ]
    };
    assert_eq!(
        metric(&text, "sidewatch_admin_file_reloads_total", &labels("ok")),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "sidewatch_admin_file_reloads_total",
            &labels("error")
        ),
        Some(1.0),
        "a lasting failure is counted once:\n{text}"
    );
    // 6 refusals above, 1 for the old token after the rotation, and any
    // polls for the new token before it was read.
    let refused = metric(
        &text,
        "sidewatch_admin_rejected_total",
        &[("listener", "admin"), ("reason", "unauthorized")],
    );
    assert!(refused.is_some_and(|v| v >= 7.0), "{refused:?} in\n{text}");
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actions_listener_asks_for_the_admin_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "reload-token\n").unwrap();
    let sidewatch = Sidewatch::start(&format!(
        "[admin]\nactions_enabled = true\nactions_listen = \"127.0.0.1:0\"\n[admin.auth]\ntoken_file = \"{}\"\n",
        token.display()
    ))
    .await;
    let url = format!(
        "http://{}/-/reload",
        sidewatch.actions.expect("actions listener")
    );
    for given in [None, Some("wrong")] {
        let mut request = client().post(&url);
        if let Some(given) = given {
            request = request.bearer_auth(given);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{given:?}");
    }
    let response = client()
        .post(&url)
        .bearer_auth("reload-token")
        .send()
        .await
        .unwrap();
    assert_ne!(response.status(), 401);
    let answer: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert!(
        answer.get("reloaded").is_some(),
        "the reload answered: {answer}"
    );
    let metrics = client()
        .get(format!("http://{}/metrics", sidewatch.addr))
        .bearer_auth("reload-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(
            &metrics,
            "sidewatch_admin_rejected_total",
            &[("listener", "actions"), ("reason", "unauthorized")]
        ),
        Some(2.0),
        "{metrics}"
    );
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_with_the_password_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "pa:ss word\n").unwrap();
    let sidewatch = Sidewatch::start(&format!(
        "[admin.auth]\nusername = \"prometheus\"\npassword = {{ file = \"{}\" }}\n",
        password.display()
    ))
    .await;
    let url = format!("http://{}/metrics", sidewatch.addr);
    let with = |user: &str, pass: &str| client().get(&url).basic_auth(user, Some(pass)).send();
    assert_eq!(
        with("prometheus", "pa:ss word").await.unwrap().status(),
        200
    );
    for (user, pass) in [
        ("prometheus", "wrong"),
        ("other", "pa:ss word"),
        ("prometheus", ""),
    ] {
        let response = with(user, pass).await.unwrap();
        assert_eq!(response.status(), 401, "{user}:{pass}");
        assert!(response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic realm="));
    }
    let response = client()
        .get(&url)
        .bearer_auth("pa:ss word")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "a bearer token is not basic auth");
    sidewatch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_431_and_bodies_413_on_admin_and_http_intake() {
    let intake = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let sidewatch = Sidewatch::start(&format!(
        r#"
[admin.limits]
max_header_bytes = 8192
max_body_bytes = 1024
[logs]
state_dir = "{}"
[[logs.sources]]
type = "http"
listen = "{intake}"
max_header_bytes = 8192
max_body_bytes = 1024
[[logs.sinks]]
type = "discard"
"#,
        state.path().display()
    ))
    .await;
    let big = "a".repeat(10_000);
    let admin = format!("http://{}/metrics", sidewatch.addr);
    let ingest = format!("http://{intake}/ingest");
    let response = client()
        .get(&admin)
        .header("x-big", &big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
    let response = client()
        .get(&admin)
        .body(vec![b'x'; 2000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let response = client()
        .post(&ingest)
        .header("x-big", &big)
        .body("{}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
    let response = client()
        .post(&ingest)
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let ok = client()
        .post(&ingest)
        .body("{\"msg\":\"hi\"}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "a request within the limits still works");
    let text = sidewatch.metrics().await;
    for (name, labels) in [
        (
            "sidewatch_admin_rejected_total",
            [("listener", "admin"), ("reason", "header_too_large")],
        ),
        (
            "sidewatch_admin_rejected_total",
            [("listener", "admin"), ("reason", "body_too_large")],
        ),
        (
            "sidewatch_log_intake_rejected_total",
            [("source", "http"), ("reason", "header_too_large")],
        ),
        (
            "sidewatch_log_intake_rejected_total",
            [("source", "http"), ("reason", "body_too_large")],
        ),
    ] {
        assert_eq!(
            metric(&text, name, &labels),
            Some(1.0),
            "{name}{labels:?} in\n{text}"
        );
    }
    sidewatch.stop().await;
}

#[test]
fn tls_misconfiguration_at_start_exits_2_naming_the_file_and_the_key() {
    let certs = ca_dir();
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.crt");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let other = ca_dir();
    let (crt, key) = (
        certs.path().join("server.crt"),
        certs.path().join("server.key"),
    );
    let cases = [
        (
            dir.path().join("missing.crt"),
            key.clone(),
            "admin.tls.cert_file",
            "missing.crt",
        ),
        (
            garbage.clone(),
            key.clone(),
            "admin.tls.cert_file",
            "garbage.crt",
        ),
        (
            crt.clone(),
            garbage.clone(),
            "admin.tls.key_file",
            "garbage.crt",
        ),
        (
            crt.clone(),
            other.path().join("server.key"),
            "admin.tls.key_file",
            "server.key",
        ),
    ];
    for (cert_file, key_file, config_key, file) in cases {
        let config = dir.path().join("sidewatch.toml");
        std::fs::write(
            &config,
            format!(
                "[admin]\nlisten = \"127.0.0.1:0\"\n[admin.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
                cert_file.display(),
                key_file.display()
            ),
        )
        .unwrap();
        for args in [&["run", "--config"][..], &["check-config"][..]] {
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_sidewatch"))
                .args(args)
                .arg(&config)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(2),
                "{args:?} {config_key}: {stderr}"
            );
            assert!(
                stderr.contains(config_key) && stderr.contains(file),
                "{args:?}: {config_key} and {file} missing from: {stderr}"
            );
        }
    }
}
