//! The Kubernetes and Compose files, parsed (no cluster or Docker engine runs here) and
//! checked for the invariants the sharded run depends on.

use serde_json::Value;

fn load(path: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    acaload::plan::source::parse(&text)
        .unwrap_or_else(|e| panic!("{path}: {e:?}"))
        .0
}

#[test]
fn indexed_job_runs_one_shard_per_completion() {
    let job = load("deploy/kubernetes/job.yaml");
    assert_eq!(
        (job["apiVersion"].as_str(), job["kind"].as_str()),
        (Some("batch/v1"), Some("Job"))
    );
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(spec["completions"], spec["parallelism"]);
    let c = &spec["template"]["spec"]["containers"][0];
    let env = |name: &str| {
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        env("ACALOAD_SHARD_COUNT")["value"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .ok(),
        spec["completions"].as_u64()
    );
    assert_eq!(
        env("JOB_COMPLETION_INDEX")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    );
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&args[..2], ["run", "/plan/mediator.yaml"]);
    assert!(args.contains(&"/results/shard-$(JOB_COMPLETION_INDEX).json"));
    assert_eq!(
        spec["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert_eq!(mounts, ["/plan", "/results"]);
}

#[test]
fn merge_job_and_volume_fit_the_job() {
    let merge = load("deploy/kubernetes/merge-job.yaml");
    let script = merge["spec"]["template"]["spec"]["containers"][0]["args"][0]
        .as_str()
        .unwrap();
    assert!(
        script.starts_with("acaload merge /results/shard-*.json --out /results/merged.json"),
        "{script}"
    );
    let pvc = load("deploy/kubernetes/pvc.yaml");
    assert_eq!(pvc["spec"]["accessModes"][0], "ReadWriteMany");
    assert_eq!(
        merge["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        pvc["metadata"]["name"]
    );
}

#[test]
fn compose_shards_cover_every_index_once() {
    let compose = load("docker-compose.yml");
    let services = compose["services"].as_object().unwrap();
    let mut shards: Vec<String> = services
        .values()
        .filter_map(|s| {
            let cmd: Vec<&str> = s["command"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let i = cmd.iter().position(|a| *a == "--shard")?;
            Some(cmd[i + 1].to_string())
        })
        .collect();
    shards.sort();
    assert_eq!(shards, ["0/3", "1/3", "2/3"]);
    let merge = services["merge"]["command"][0].as_str().unwrap();
    assert!(
        merge.contains(
            "acaload merge /shared/shard-0.json /shared/shard-1.json /shared/shard-2.json"
        )
    );
}

/// `deploy/kubernetes/configmap.yaml` as it must be: `plans/mediator.yaml` verbatim.
fn configmap_text() -> String {
    let plan = std::fs::read_to_string(format!(
        "{}/plans/mediator.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut out = String::from(
        "# The plan the Job runs, mounted at /plan. Generated from plans/mediator.yaml and kept\n\
         # equal to it by tests/integration/deploy.rs (ACALOAD_UPDATE_SCHEMA=1 cargo test\n\
         # --release --test integration deploy rewrites it). For another plan:\n\
         #   kubectl create configmap acaload-plan --from-file=mediator.yaml=plans/other.yaml\n\
         apiVersion: v1\n\
         kind: ConfigMap\n\
         metadata:\n  name: acaload-plan\n  labels: { app.kubernetes.io/name: acaload }\n\
         data:\n  mediator.yaml: |\n",
    );
    for line in plan.lines() {
        if !line.is_empty() {
            out.push_str("    ");
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[test]
fn configmap_carries_the_plan_verbatim() {
    let path = format!(
        "{}/deploy/kubernetes/configmap.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let want = configmap_text();
    if std::env::var_os("ACALOAD_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "deploy/kubernetes/configmap.yaml is not plans/mediator.yaml; regenerate it with \
         ACALOAD_UPDATE_SCHEMA=1 cargo test --release --test integration deploy"
    );
    // What the pod sees at /plan/mediator.yaml is the plan, byte for byte.
    let cm = load("deploy/kubernetes/configmap.yaml");
    let plan = std::fs::read_to_string(format!(
        "{}/plans/mediator.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert_eq!(cm["data"]["mediator.yaml"].as_str(), Some(plan.as_str()));
    let job = load("deploy/kubernetes/job.yaml");
    let volumes = job["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["configMap"]["name"] == cm["metadata"]["name"]),
        "the Job mounts this ConfigMap"
    );
}

/// Schema-aware check of every manifest with `kubernetes-validate` (the Kubernetes OpenAPI
/// schemas it ships, strict: unknown fields fail), which `scripts/install-test-deps.sh`
/// installs into `.tools/venv`.
#[test]
#[ignore = "needs kubernetes-validate in .tools/venv (scripts/test.sh installs it and runs this)"]
fn manifests_pass_kubernetes_schema_validation() {
    let root = env!("CARGO_MANIFEST_DIR");
    let tool = format!("{root}/.tools/venv/bin/kubernetes-validate");
    assert!(
        std::path::Path::new(&tool).exists(),
        "{tool} is missing; scripts/install-test-deps.sh installs it"
    );
    let files = ["configmap.yaml", "pvc.yaml", "job.yaml", "merge-job.yaml"];
    let out = std::process::Command::new(&tool)
        .args(["--strict", "--kubernetes-version", "1.33.0"])
        .args(files.map(|f| format!("{root}/deploy/kubernetes/{f}")))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    for f in files {
        assert!(
            text.lines()
                .any(|l| l.contains(&format!("deploy/kubernetes/{f} passed"))),
            "{f} not validated:\n{text}"
        );
    }
}
