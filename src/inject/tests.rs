use super::*;

fn inject(text: &str, options: &Options) -> Injected {
    run(&[("in.yaml".into(), text.into())], options).unwrap()
}

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers:
        - name: shop
          image: shop:1
          ports:
            - {name: http, containerPort: 8080}
          readinessProbe:
            httpGet: {path: /health, port: http}
";

#[test]
fn native_sidecar_goes_first_in_init_containers() {
    let out = inject(DEPLOYMENT, &Options::default());
    let doc = &yaml::load(&out.yaml).unwrap()[0];
    let spec = &doc["spec"]["template"]["spec"];
    assert_eq!(
        spec["initContainers"][0]["name"].as_str(),
        Some(CONTAINER_NAME)
    );
    assert_eq!(
        spec["initContainers"][0]["restartPolicy"].as_str(),
        Some("Always")
    );
    assert_eq!(spec["containers"].as_vec().unwrap().len(), 1);
    let labels = &doc["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels[INSTANCE_LABEL].as_str(), Some("sidewatch"));
    assert_eq!(labels["app"].as_str(), Some("shop"), "existing labels kept");
    let annotations = &doc["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"].as_str(), Some("4790"));
    assert!(out.notes.is_empty(), "{:?}", out.notes);
}

#[test]
fn classic_sidecar_is_appended_and_waits_for_the_app_port() {
    let options = Options {
        native: false,
        ..Options::default()
    };
    let out = inject(DEPLOYMENT, &options);
    let doc = &yaml::load(&out.yaml).unwrap()[0];
    let containers = doc["spec"]["template"]["spec"]["containers"]
        .as_vec()
        .unwrap();
    assert_eq!(containers[1]["name"].as_str(), Some(CONTAINER_NAME));
    assert!(containers[1]["restartPolicy"].is_badvalue());
    assert!(
        out.yaml.contains("value: \"127.0.0.1:8080\""),
        "{}",
        out.yaml
    );
}

#[test]
fn second_run_changes_nothing() {
    let once = inject(DEPLOYMENT, &Options::default());
    let twice = inject(&once.yaml, &Options::default());
    assert_eq!(once.yaml, twice.yaml);
    assert!(twice.diff.is_empty());
    assert!(
        twice.notes[0].contains("already has the sidewatch container"),
        "{:?}",
        twice.notes
    );
}

#[test]
fn disabled_annotation_leaves_the_workload_alone() {
    let text = DEPLOYMENT.replace(
        "  name: shop\n",
        "  name: shop\n  annotations:\n    sidewatch.io/inject: disabled\n",
    );
    let out = inject(&text, &Options::default());
    assert!(!out.yaml.contains("initContainers"));
    assert!(
        out.notes[0].contains("sidewatch.io/inject: disabled"),
        "{:?}",
        out.notes
    );
}

#[test]
fn app_port_annotation_takes_over_the_named_port_and_its_probes() {
    let text = DEPLOYMENT.replace(
        "      labels: {app: shop}\n",
        "      labels: {app: shop}\n      annotations: {sidewatch.io/app-port: http}\n",
    );
    let out = inject(&text, &Options::default());
    let doc = &yaml::load(&out.yaml).unwrap()[0];
    let spec = &doc["spec"]["template"]["spec"];
    let app = &spec["containers"][0];
    assert_eq!(app["ports"][0]["name"].as_str(), Some("app-http"));
    assert_eq!(
        app["readinessProbe"]["httpGet"]["port"].as_str(),
        Some("app-http")
    );
    let sidecar = &spec["initContainers"][0];
    assert_eq!(sidecar["ports"][1]["name"].as_str(), Some("http"));
    assert_eq!(
        yaml::int(&sidecar["ports"][1]["containerPort"]),
        Some(PROXY_PORT)
    );
    assert!(out.yaml.contains("127.0.0.1:8080"));
    assert!(
        out.notes[0].contains("renamed \"app-http\""),
        "{:?}",
        out.notes
    );
}

#[test]
fn log_path_shares_an_empty_dir_with_the_app() {
    let options = Options {
        log_path: Some("/var/log/shop".into()),
        ..Options::default()
    };
    let out = inject(DEPLOYMENT, &options);
    let doc = &yaml::load(&out.yaml).unwrap()[0];
    let spec = &doc["spec"]["template"]["spec"];
    assert_eq!(
        spec["containers"][0]["volumeMounts"][0]["mountPath"].as_str(),
        Some("/var/log/shop")
    );
    let volumes = spec["volumes"].as_vec().unwrap();
    assert!(volumes
        .iter()
        .any(|v| v["name"].as_str() == Some("sidewatch-logs")));
}

#[test]
fn unknown_kinds_and_templateless_documents_pass_through_with_a_note() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: shop}\nspec: {ports: [{port: 80}]}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: empty}\nspec: {}\n";
    let out = inject(text, &Options::default());
    assert_eq!(
        out.yaml,
        yaml::load(text)
            .unwrap()
            .iter()
            .map(yaml::dump)
            .collect::<String>()
    );
    assert!(
        out.notes[0].contains("(Service/shop): passed through unchanged"),
        "{:?}",
        out.notes
    );
    assert!(out.notes[1].contains("no pod template"), "{:?}", out.notes);
}

#[test]
fn invalid_yaml_names_line_and_column() {
    let err = run(
        &[(
            "bad.yaml".into(),
            "kind: Pod\nspec:\n  - a\n  b: c\n".into(),
        )],
        &Options::default(),
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("bad.yaml: invalid YAML at line 4 column"),
        "{message}"
    );
}

#[test]
fn dry_run_diff_shows_only_additions() {
    let out = inject(DEPLOYMENT, &Options::default());
    assert!(
        out.diff
            .starts_with("--- in.yaml: document 1 (Deployment/shop)\n+++ "),
        "{}",
        out.diff
    );
    assert!(
        out.diff
            .lines()
            .filter(|l| l.starts_with('-') && !l.starts_with("---"))
            .count()
            == 0,
        "{}",
        out.diff
    );
    assert!(out.diff.contains("+      initContainers:"), "{}", out.diff);
}

#[test]
fn a_document_that_would_not_read_back_is_refused() {
    // Found by fuzz/inject_yaml: 300 control characters make a key that is
    // 1800 characters once escaped, beyond YAML's 1024 for a simple key, so
    // the writer's output did not load.
    let key = "\u{1}".repeat(300);
    let text = format!("kind: ConfigMap\n{key}: x\n");
    let error = run(&[("in.yaml".into(), text)], &Options::default()).unwrap_err();
    assert!(
        matches!(&error, InjectError::Unwritable { label } if label.contains("document 1")),
        "{error}"
    );
    // Every document is still checked; ordinary ones pass.
    let out = inject(
        &format!("{DEPLOYMENT}---\nkind: ConfigMap\nx: 1\n"),
        &Options::default(),
    );
    assert_eq!(yaml::load(&out.yaml).unwrap().len(), 2);
}

#[test]
fn a_string_block_literals_cannot_hold_is_written_quoted() {
    // Found while checking the fix above: the writer put a value starting
    // with spaces or a newline in a `|` block without an indentation
    // indicator, which does not load; such documents are written with
    // quoted strings instead.
    for value in [r#""  indented\nline\n""#, r#""\n leading newline""#] {
        let text = format!("kind: ConfigMap\ndata:\n  k: {value}\n");
        let out = inject(&text, &Options::default());
        let docs = yaml::load(&out.yaml).unwrap();
        let want = yaml::load(&text).unwrap();
        assert_eq!(docs[0]["data"]["k"], want[0]["data"]["k"], "{}", out.yaml);
    }
    // Block literals stay where they load back.
    let out = inject(
        "kind: ConfigMap\ndata:\n  k: \"a\\nb\\n\"\n",
        &Options::default(),
    );
    assert!(out.yaml.contains("k: |\n"), "{}", out.yaml);
}
