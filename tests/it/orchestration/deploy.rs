//! `kscale deploy`: a prebuilt image (no build), and a changed server (new tag, build, load,
//! rollout) versus an unchanged one (nothing).

use super::{Env, mutating_requests};

const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/default/deployments/inference";

fn deployed_image(env: &Env) -> String {
    env.api.object(DEPLOYMENT).expect("Deployment")["spec"]["template"]["spec"]["containers"][0]
        ["image"]
        .as_str()
        .expect("image")
        .to_string()
}

fn rv(env: &Env) -> String {
    env.versions()[DEPLOYMENT].clone()
}

#[test]
fn deploy_with_image_builds_nothing() {
    let env = Env::new();
    env.up_fresh();
    let before = rv(&env);
    let versions_before = env.versions();
    let image = "registry.example.com/team/kscale-server:v1.2.3";
    env.kscale(&["deploy", "--image", image])
        .expect_code(0)
        .stdout_has(&[
            &format!("image: {image}"),
            "Deployment default/inference: configured",
        ]);
    let log = env.log();
    // On minikube kscale only asks whether the nodes or the local engine have the image; the
    // engine lacks this one, so the nodes will pull it: nothing is built, loaded or pushed.
    assert!(
        log.iter()
            .filter(|l| l.starts_with("docker ") || l.starts_with("minikube image"))
            .all(|l| l.starts_with("docker image inspect ")
                || l.starts_with("minikube image ls")
                || l.starts_with("docker --version")
                || l.starts_with("docker version")),
        "with --image, docker and minikube images are only inspected: {log:?}"
    );
    assert_eq!(
        env.mutating_calls(),
        Vec::<String>::new(),
        "no build, no load, no helm change: {log:?}"
    );
    assert_eq!(deployed_image(&env), image);
    assert_ne!(rv(&env), before, "the Deployment changed");
    let changed: Vec<String> = versions_before
        .iter()
        .filter(|(path, v)| env.versions().get(*path) != Some(v))
        .map(|(path, _)| path.clone())
        .collect();
    assert_eq!(changed, [DEPLOYMENT], "only the Deployment changed");
    assert!(
        mutating_requests(&env)
            .iter()
            .all(|r| r.starts_with("PATCH ")),
        "applies only"
    );
}

#[test]
fn a_changed_server_is_rebuilt_loaded_and_rolled_out_and_an_unchanged_one_is_not() {
    let env = Env::new();
    env.up_fresh();
    let first_image = deployed_image(&env);
    let first_rv = rv(&env);
    let src = env.source().display().to_string();

    // Unchanged sources: nothing to build, load or roll out.
    env.kscale(&["deploy", "--source", &src])
        .expect_code(0)
        .stderr_has(&["unchanged, already in the cluster"]);
    assert_eq!(
        env.mutating_calls(),
        Vec::<String>::new(),
        "{:?}",
        env.log()
    );
    assert_eq!(rv(&env), first_rv);
    env.clear_log();

    // A change to the server's own code gives a new tag.
    std::fs::write(
        env.source().join("server/src/main.rs"),
        "fn main() { println!(\"inference v2\"); }\n",
    )
    .expect("edit the server");
    let run = env.kscale(&["deploy", "--source", &src]);
    run.expect_code(0)
        .stderr_has(&["built, loaded on every node", "rollout"])
        .stdout_has(&["(built)", "Deployment default/inference: configured"]);
    let second_image = deployed_image(&env);
    assert_ne!(second_image, first_image);
    assert!(second_image.starts_with("kscale-server:"), "{second_image}");
    assert_eq!(
        env.mutating_calls(),
        [
            "docker build -f <source>/server/Dockerfile -t kscale-server:<tag> <source>",
            "minikube image load kscale-server:<tag> -p kscale",
        ],
        "{:?}",
        env.log()
    );
    let built = std::fs::read_to_string(env.root().join("log")).expect("log");
    assert!(built.contains(&format!("-t {second_image} ")), "{built}");
    assert_ne!(rv(&env), first_rv, "the Deployment rolled");
    let generation = env.api.object(DEPLOYMENT).expect("Deployment")["metadata"]["generation"]
        .as_i64()
        .expect("generation");
    assert_eq!(generation, 2, "one new generation for one change");
}

#[test]
fn deploy_without_sources_or_image_says_what_to_pass() {
    let env = Env::new();
    env.up_fresh();
    let empty = env.root().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    env.kscale(&["deploy", "--source", &empty.display().to_string()])
        .expect_code(1)
        .stderr_has(&["has no server/Dockerfile", "--image REF"]);
    assert_eq!(env.mutating_calls(), Vec::<String>::new());
}

#[test]
fn changed_metric_settings_upgrade_the_adapter_rules_only() {
    let env = Env::new();
    env.up_fresh();
    let before = env.versions();
    env.kscale(&[
        "deploy",
        "--image",
        "kscale-server:000000000001",
        "--set",
        "metric.rate_window_seconds=180",
    ])
    .expect_code(0);
    let writes = env.mutating_calls();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(
        writes[0].starts_with(
            "helm --kube-context kscale upgrade --install prometheus-adapter prometheus-community/prometheus-adapter --version 5.3.0 "
        ),
        "{writes:?}"
    );
    let values = std::fs::read_to_string(
        env.state()
            .join("helm/releases/monitoring/prometheus-adapter/values.yaml"),
    )
    .expect("values");
    assert!(values.contains("[180s]"), "the new rate window: {values}");
    let revision = std::fs::read_to_string(
        env.state()
            .join("helm/releases/monitoring/prometheus-adapter/revision"),
    )
    .expect("revision");
    assert_eq!(revision.trim(), "2");
    // The stack's own release is not touched by deploy.
    let stack_revision = std::fs::read_to_string(
        env.state()
            .join("helm/releases/monitoring/prometheus/revision"),
    )
    .expect("revision");
    assert_eq!(stack_revision.trim(), "1");
    assert_ne!(env.versions()[DEPLOYMENT], before[DEPLOYMENT], "new image");
}

#[test]
fn deploy_without_the_adapter_warns_and_installs_nothing() {
    let env = Env::new();
    env.seed_profile("kscale", "Running", 2);
    env.kscale(&["deploy", "--image", "kscale-server:000000000001"])
        .expect_code(0)
        .stderr_has(&[
            "warning: prometheus-adapter is not installed in namespace monitoring",
            "until `kscale up` installs it",
        ]);
    assert_eq!(
        env.mutating_calls(),
        Vec::<String>::new(),
        "{:?}",
        env.log()
    );
    assert!(env.api.object(DEPLOYMENT).is_some());
}

#[test]
fn deploy_to_another_context_pushes_to_the_registry() {
    let env = Env::new();
    env.write_kubeconfig("staging");
    let src = env.source().display().to_string();
    let run = env.kscale(&[
        "--context",
        "staging",
        "deploy",
        "--source",
        &src,
        "--registry",
        "registry.example.com:5000/ml/",
    ]);
    run.expect_code(0)
        .stdout_has(&["image: registry.example.com:5000/ml/kscale-server:"]);
    let log = env.log();
    assert!(
        !log.iter().any(|l| l.starts_with("minikube")),
        "no minikube on another context: {log:?}"
    );
    assert_eq!(
        env.mutating_calls(),
        [
            "docker build -f <source>/server/Dockerfile -t kscale-server:<tag> <source>",
            "docker tag kscale-server:<tag> registry.example.com:5000/ml/kscale-server:<tag>",
            "docker push registry.example.com:5000/ml/kscale-server:<tag>",
        ]
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("helm --kube-context staging list")),
        "helm targets the given context: {log:?}"
    );
    assert!(
        deployed_image(&env).starts_with("registry.example.com:5000/ml/kscale-server:"),
        "{}",
        deployed_image(&env)
    );
}

#[test]
fn another_context_without_registry_or_image_is_refused() {
    let env = Env::new();
    env.write_kubeconfig("staging");
    let src = env.source().display().to_string();
    env.kscale(&["--context", "staging", "deploy", "--source", &src])
        .expect_code(1)
        .stderr_has(&["--registry HOST", "--image REF"]);
    assert_eq!(env.mutating_calls(), Vec::<String>::new());
}

#[test]
fn a_real_server_image_in_the_local_engine_is_loaded_on_every_node_once() {
    let env = Env::new();
    env.up_fresh();
    let image = "my-llama:dev";
    std::fs::write(env.state().join("docker/images"), format!("{image}\n")).expect("seed image");
    env.clear_log();
    let llama = [
        "--server",
        "llamacpp",
        "--set",
        "app.model=/models/tiny.gguf",
        "--set",
    ];
    env.kscale(&[&llama[..], &[&format!("app.image={image}"), "deploy"]].concat())
        .expect_code(0)
        .stdout_has(&[&format!("image: {image}")]);
    let loads: Vec<String> = env
        .log()
        .into_iter()
        .filter(|l| l.starts_with("minikube image load"))
        .collect();
    assert_eq!(loads, [format!("minikube image load {image} -p kscale")]);
    let pod = &env.api.object(DEPLOYMENT).expect("Deployment")["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["image"], image);
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(
        args.windows(2)
            .any(|w| w == ["--model", "/models/tiny.gguf"])
            && args.contains(&"--metrics"),
        "{args:?}"
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(c["ports"][0]["containerPort"], 8080);

    // Now on the nodes: a second deploy loads nothing.
    env.clear_log();
    env.kscale(&[&llama[..], &[&format!("app.image={image}"), "deploy"]].concat())
        .expect_code(0);
    assert!(
        !env.log()
            .iter()
            .any(|l| l.starts_with("minikube image load")),
        "{:?}",
        env.log()
    );
}

#[test]
fn a_real_server_without_a_model_or_with_gpus_on_minikube_is_refused_before_any_tool_runs() {
    let env = Env::new();
    env.kscale(&["--server", "vllm", "deploy"])
        .expect_code(2)
        .stderr_has(&["app.model", "vLLM needs a model", "app.gpus", "--gpus=all"]);
    env.kscale(&[
        "--server",
        "tgi",
        "--set",
        "app.model=m",
        "--set",
        "app.gpus=0",
        "--dry-run",
        "up",
    ])
    .expect_code(0);
    env.clear_log();
    env.kscale(&["--server", "triton", "up"])
        .expect_code(2)
        .stderr_has(&["app.model"]);
    assert_eq!(env.log(), Vec::<String>::new(), "nothing ran");
}
