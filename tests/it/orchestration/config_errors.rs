//! Every invalid configuration value exits 2 naming its key, before any tool runs, whether it
//! comes from `--set`, a kscale.toml or a `KSCALE_*` variable; unknown keys are refused.

use super::Env;

/// (dotted key, invalid value, whether TOML needs it quoted).
const INVALID: &[(&str, &str, bool)] = &[
    ("cluster.profile", "Not_A_Label", true),
    ("cluster.nodes", "0", false),
    ("cluster.nodes", "11", false),
    ("cluster.memory_mb", "2048", false),
    ("cluster.cpus", "1", false),
    ("cluster.driver", " ", true),
    ("app.name", "Inference", true),
    ("app.namespace", "-default", true),
    ("app.port", "0", false),
    ("app.node_port", "8080", false),
    ("app.inference_seconds", "0.0", false),
    ("app.inference_seconds", "3601.0", false),
    ("app.workers", "0", false),
    ("app.max_queue", "100001", false),
    ("app.keep_alive_seconds", "0", false),
    ("app.start_delay_seconds", "-1.0", false),
    ("app.cpu_request", "lots", true),
    ("app.cpu_limit", "0", true),
    ("app.memory_request", "-5Mi", true),
    ("app.memory_limit", "128MB", true),
    ("metric.name", "requests-per-second", true),
    ("metric.target", "0.0", false),
    ("metric.scrape_interval_seconds", "0", false),
    ("metric.rate_window_seconds", "59", false),
    ("metric.relist_interval_seconds", "5", false),
    ("hpa.min_replicas", "0", false),
    ("hpa.max_replicas", "0", false),
    ("hpa.scale_up.stabilization_window_seconds", "3601", false),
    ("hpa.scale_down.stabilization_window_seconds", "7200", false),
    ("monitoring.namespace", "Monitoring", true),
    ("monitoring.prometheus_release", "prom_stack", true),
    ("monitoring.adapter_release", "", true),
    ("monitoring.prometheus_chart_version", "88.x", true),
    ("monitoring.adapter_chart_version", "5.3", true),
    ("monitoring.repo_url", "ftp://charts.example", true),
    ("timeouts.cluster_seconds", "0", false),
    ("timeouts.metrics_server_seconds", "0", false),
    ("timeouts.helm_seconds", "0", false),
    ("timeouts.apiservice_seconds", "0", false),
    ("timeouts.rollout_seconds", "0", false),
    ("timeouts.metric_seconds", "0", false),
];

/// Keys only a kscale.toml can set (lists and optional values): (TOML text, key named).
const INVALID_TOML_ONLY: &[(&str, &str)] = &[
    (
        "[hpa.scale_up]\npolicies = [{ type = \"Pods\", value = 0, period_seconds = 60 }]\n",
        "hpa.scale_up.policies[0].value",
    ),
    (
        "[hpa.scale_down]\npolicies = [{ type = \"Percent\", value = 10, period_seconds = 1801 }]\n",
        "hpa.scale_down.policies[0].period_seconds",
    ),
    ("[hpa.scale_up]\npolicies = []\n", "hpa.scale_up.policies"),
    (
        "[hpa.scale_down]\ntolerance = 1.5\n",
        "hpa.scale_down.tolerance",
    ),
];

fn toml_for(key: &str, value: &str, quoted: bool) -> String {
    let (table, leaf) = key.rsplit_once('.').expect("dotted key");
    let value = if quoted {
        format!("{value:?}")
    } else {
        value.to_string()
    };
    format!("[{table}]\n{leaf} = {value}\n")
}

fn env_name(key: &str) -> String {
    format!("KSCALE_{}", key.replace('.', "_").to_ascii_uppercase())
}

#[track_caller]
fn refused(env: &Env, run: &super::Run, key: &str, how: &str) {
    assert_eq!(
        run.code,
        Some(2),
        "{key} via {how}: exit code\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(key),
        "{key} via {how}: the error must name the key\n{}",
        run.stderr
    );
    assert_eq!(
        env.log(),
        Vec::<String>::new(),
        "{key} via {how}: a tool ran"
    );
    assert!(env.api.seen().is_empty());
}

#[test]
fn each_invalid_value_is_refused_by_key_from_every_layer() {
    let env = Env::new();
    let file = env.work().join("kscale.toml");
    for &(key, value, quoted) in INVALID {
        let set = format!("{key}={value}");
        let run = env.kscale(&["up", "--set", &set]);
        refused(&env, &run, key, "--set");

        std::fs::write(&file, toml_for(key, value, quoted)).expect("write kscale.toml");
        let run = env.kscale(&["up"]);
        refused(&env, &run, key, "kscale.toml");
        std::fs::remove_file(&file).expect("remove kscale.toml");

        let run = env.kscale_with(&["up"], &[(&env_name(key), value)]);
        refused(&env, &run, key, "environment");
    }
    for &(text, key) in INVALID_TOML_ONLY {
        let path = env.root().join("other.toml");
        std::fs::write(&path, text).expect("write config");
        let run = env.kscale(&["--config", &path.display().to_string(), "up"]);
        refused(&env, &run, key, "--config file");
    }
}

#[test]
fn every_error_is_reported_at_once() {
    let env = Env::new();
    let run = env.kscale(&[
        "up",
        "--set",
        "hpa.min_replicas=5",
        "--set",
        "hpa.max_replicas=2",
        "--set",
        "cluster.memory_mb=1000",
    ]);
    run.expect_code(2).stderr_has(&[
        "invalid configuration",
        "hpa.max_replicas: 2 is below hpa.min_replicas (5)",
        "cluster.memory_mb: 1000 MB per node is too little",
    ]);
}

#[test]
fn unknown_keys_are_refused() {
    let env = Env::new();
    let run = env.kscale(&["up", "--set", "app.replicas=3"]);
    refused(&env, &run, "app.replicas", "--set");

    let file = env.work().join("kscale.toml");
    std::fs::write(&file, "[app]\nreplicas = 3\n").expect("write");
    let run = env.kscale(&["up"]);
    refused(&env, &run, "replicas", "kscale.toml");
    std::fs::remove_file(&file).expect("remove");

    let run = env.kscale_with(&["up"], &[("KSCALE_APP_REPLICAS", "3")]);
    refused(&env, &run, "KSCALE_APP_REPLICAS", "environment");

    let run = env.kscale(&["up", "--set", "metric.profile=fastest"]);
    refused(&env, &run, "metric.profile", "--set");
}

#[test]
fn a_value_of_the_wrong_type_names_its_key() {
    let env = Env::new();
    let run = env.kscale(&["up", "--set", "cluster.nodes=two"]);
    refused(&env, &run, "cluster.nodes", "--set");
    let run = env.kscale_with(&["up"], &[("KSCALE_APP_INFERENCE_SECONDS", "ten")]);
    refused(&env, &run, "app.inference_seconds", "environment");
}
