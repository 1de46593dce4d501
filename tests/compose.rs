//! docker-compose.yml passes `docker compose config` (the Compose plugin,
//! or the standalone `docker-compose` that `scripts/test` installs from
//! Debian when neither is there; `TRAILHOUND_COMPOSE` names another one),
//! and what the tool resolves has the whole deployment: Kafka in KRaft mode
//! with its topics, the AWS emulator, Prometheus scraping the detector,
//! Grafana with the dashboard provisioned, and the generate, ingest and
//! detect services. Without a compose tool the test says so and skips.

use std::path::Path;
use std::process::Command;

use serde_yaml::Value;

/// The compose command to use (program and leading arguments), if any works.
fn compose_tool() -> Option<Vec<String>> {
    let mut candidates: Vec<Vec<String>> = Vec::new();
    if let Ok(tool) = std::env::var("TRAILHOUND_COMPOSE")
        && !tool.trim().is_empty()
    {
        candidates.push(tool.split_whitespace().map(str::to_string).collect());
    }
    candidates.push(vec!["docker".into(), "compose".into()]);
    candidates.push(vec!["docker-compose".into()]);
    candidates.into_iter().find(|c| {
        Command::new(&c[0])
            .args(&c[1..])
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn service<'a>(config: &'a Value, name: &str) -> &'a Value {
    let s = &config["services"][name];
    assert!(
        !s.is_null(),
        "no service {name} in the resolved compose file"
    );
    s
}

/// A service's `command` (or `entrypoint`), joined into one string.
fn words(v: &Value) -> String {
    match v {
        Value::Sequence(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

fn env(service: &Value, key: &str) -> String {
    match &service["environment"][key] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("environment {key} is {other:?}"),
    }
}

fn mounts(service: &Value) -> Vec<String> {
    service["volumes"]
        .as_sequence()
        .map(|v| {
            v.iter()
                .map(|m| match m {
                    Value::String(s) => s.clone(),
                    // The long form some versions resolve to.
                    other => format!(
                        "{}:{}",
                        other["source"].as_str().unwrap_or_default(),
                        other["target"].as_str().unwrap_or_default()
                    ),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_compose_file_validates_and_has_the_whole_deployment() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(tool) = compose_tool() else {
        eprintln!(
            "SKIPPED: no compose tool (neither `docker compose` nor `docker-compose`; scripts/test \
             installs Debian's docker-compose when it can, TRAILHOUND_COMPOSE names another)"
        );
        return;
    };
    let out = Command::new(&tool[0])
        .args(&tool[1..])
        .args(["--file", "docker-compose.yml", "config"])
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool:?}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{tool:?} config rejects docker-compose.yml:\n{stderr}"
    );
    assert!(
        !stderr.to_ascii_lowercase().contains("warn"),
        "{tool:?} config warns:\n{stderr}"
    );
    let config: Value = serde_yaml::from_slice(&out.stdout).unwrap();

    // Kafka in KRaft mode: broker and controller in one process, no ZooKeeper.
    let kafka = service(&config, "kafka");
    assert!(env(kafka, "KAFKA_PROCESS_ROLES").contains("controller"));
    assert!(env(kafka, "KAFKA_CONTROLLER_QUORUM_VOTERS").contains("kafka:9093"));
    assert!(config["services"]["zookeeper"].is_null());
    let init = words(&service(&config, "kafka-init")["command"]);
    for topic in [
        "trailhound.events",
        "trailhound.alerts",
        "trailhound.actions",
        "trailhound.dead-letters",
    ] {
        assert!(init.contains(topic), "kafka-init does not create {topic}");
    }

    // The AWS emulator.
    let moto = service(&config, "moto");
    assert!(moto["image"].as_str().unwrap_or_default().contains("moto"));

    // Prometheus with the scrape config that targets the detector.
    let prometheus = service(&config, "prometheus");
    assert!(
        mounts(prometheus)
            .iter()
            .any(|m| m.contains("deploy/prometheus/prometheus.yml"))
    );
    let scrape = std::fs::read_to_string(root.join("deploy/prometheus/prometheus.yml")).unwrap();
    assert!(scrape.contains("detector:9464"));

    // Grafana with the provisioning folder and the dashboard.
    let grafana = service(&config, "grafana");
    let grafana_mounts = mounts(grafana);
    assert!(
        grafana_mounts
            .iter()
            .any(|m| m.contains("deploy/grafana/provisioning")
                && m.contains("/etc/grafana/provisioning")),
        "{grafana_mounts:?}"
    );
    assert!(
        grafana_mounts
            .iter()
            .any(|m| m.contains("deploy/grafana/dashboards")),
        "{grafana_mounts:?}"
    );
    assert!(
        root.join("deploy/grafana/dashboards/trailhound.json")
            .is_file()
    );
    assert!(root.join("deploy/grafana/provisioning").is_dir());

    // trailhound: one image built from the checkout, ingest and detect over Kafka.
    let generate = service(&config, "generate");
    let dockerfile = generate["build"]["dockerfile"].as_str().unwrap_or_default();
    assert!(
        dockerfile.ends_with("deploy/trailhound/Dockerfile"),
        "{dockerfile}"
    );
    assert!(root.join("deploy/trailhound/Dockerfile").is_file());
    assert!(words(&generate["command"]).contains("trailhound generate"));
    let ingest = words(&service(&config, "ingest")["command"]);
    assert!(
        ingest.starts_with("ingest ") && ingest.contains("--kafka kafka:19092"),
        "{ingest}"
    );
    let detect = service(&config, "detect");
    let command = words(&detect["command"]);
    for part in [
        "detect",
        "--kafka kafka:19092",
        "--group",
        "--state",
        "--metrics 0.0.0.0:9464",
        "--config /etc/trailhound/trailhound.yaml",
    ] {
        assert!(command.contains(part), "detect lacks {part}: {command}");
    }
    let aliases = &detect["networks"]["default"]["aliases"];
    assert!(
        aliases
            .as_sequence()
            .is_some_and(|a| a.iter().any(|x| x.as_str() == Some("detector"))),
        "Prometheus scrapes detector:9464: {aliases:?}"
    );
    // Its settings file parses as trailhound's own.
    let settings = root.join("deploy/trailhound/trailhound.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_trailhound"))
        .args(["detect", "--config"])
        .arg(&settings)
        .arg("--quiet")
        .arg("-")
        .env("TRAILHOUND_KAFKA_BROKERS", "127.0.0.1:9")
        .env("TRAILHOUND_LOG", "error")
        .current_dir(tempfile::tempdir().unwrap().path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "deploy/trailhound/trailhound.yaml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
