//! The Kubernetes and Compose files, parsed (no cluster or Docker engine runs here) and
//! checked for the invariants the sharded run depends on.

use serde_json::Value;

fn load(path: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    acaload::source::parse(&text)
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
