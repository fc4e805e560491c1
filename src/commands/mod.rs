//! One module per subcommand; each is a thin orchestration of the modules that do the work.

pub mod deploy;
pub mod load;
pub mod render;
pub mod teardown;
pub mod up;

/// How to reach each part of the stack, for the final summary.
pub fn access_lines(s: &crate::session::Session) -> Vec<(String, String)> {
    let c = &s.cfg;
    let m = &c.monitoring;
    let ctx = &s.context;
    let service = if s.minikube {
        format!(
            "minikube service {} -n {} -p {} --url",
            c.app.name, c.app.namespace, c.cluster.profile
        )
    } else {
        format!(
            "kubectl --context {ctx} -n {} port-forward svc/{} {}:{}",
            c.app.namespace, c.app.name, c.app.port, c.app.port
        )
    };
    vec![
        (
            "service".into(),
            format!("{service}   then: curl -X POST URL/infer"),
        ),
        (
            "prometheus".into(),
            format!(
                "kubectl --context {ctx} -n {} port-forward svc/{} 9090   then open http://localhost:9090",
                m.namespace,
                m.prometheus_service()
            ),
        ),
        (
            "grafana".into(),
            format!(
                "kubectl --context {ctx} -n {} port-forward svc/{}-grafana 3001:80   then open http://localhost:3001 (user admin, password: kubectl -n {} get secret {}-grafana -o jsonpath='{{.data.admin-password}}' | base64 -d)",
                m.namespace, m.prometheus_release, m.namespace, m.prometheus_release
            ),
        ),
        (
            "metric".into(),
            format!(
                "kubectl --context {ctx} get --raw /apis/external.metrics.k8s.io/v1beta1/namespaces/{}/{}",
                c.app.namespace, c.metric.name
            ),
        ),
        (
            "hpa".into(),
            format!(
                "kubectl --context {ctx} -n {} get hpa {} --watch",
                c.app.namespace, c.app.name
            ),
        ),
    ]
}
