//! The objects injection adds, as the JSON the apiserver stores. Names and paths here are a
//! stable interface: they identify an already-injected pod, and the README documents the token
//! path (`/var/run/secrets/hadoop/token`).
use super::config::{Ca, Injection};
use serde_json::{Value, json};

/// In-memory volume holding the credentials file; shared by the fetcher and every container.
pub const TOKEN_VOLUME: &str = "kube2hadoop-token";
/// Projected service-account token proving to token-service which pod asks; fetcher only.
pub const SA_TOKEN_VOLUME: &str = "kube2hadoop-sa-token";
/// The token service's CA, when it comes from a ConfigMap; fetcher only.
pub const CA_VOLUME: &str = "kube2hadoop-ca";
/// The fetcher (init container, or native sidecar with `refresh`).
pub const FETCHER: &str = "kube2hadoop-fetcher";

pub const TOKEN_DIR: &str = "/var/run/secrets/hadoop";
pub const TOKEN_FILE: &str = "/var/run/secrets/hadoop/token";
pub const TOKEN_ENV: &str = "HADOOP_TOKEN_FILE_LOCATION";
const SA_TOKEN_DIR: &str = "/var/run/secrets/kube2hadoop";
const CA_DIR: &str = "/etc/kube2hadoop/ca";
/// init-fetcher's variable for the CA as PEM text (`--ca-pem`).
pub const CA_PEM_ENV: &str = "K2H_FETCH_CA_PEM";
/// Where the image (see init-fetcher/Dockerfile) has the binary; the sidecar's startup probe
/// runs it.
const FETCHER_BINARY: &str = "/init-fetcher";
/// The token service's audience (token-service checks it).
pub use k2h_contract::names::AUDIENCE;

/// How the fetcher runs in one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Native sidecar running `refresh` instead of a one-shot `fetch`.
    pub refresh: bool,
    /// The pod sets `fsGroup`: app containers read a 0440 file through that group. Without
    /// it they may run as another user, so the file is made 0444 (it is on a volume only
    /// this pod's containers mount).
    pub fs_group: bool,
}

/// The volumes injection adds, by name.
pub fn volumes(cfg: &Injection) -> Vec<(&'static str, Value)> {
    let mut v = vec![
        (
            TOKEN_VOLUME,
            json!({"name": TOKEN_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "4Mi"}}),
        ),
        (
            SA_TOKEN_VOLUME,
            json!({"name": SA_TOKEN_VOLUME, "projected": {"sources": [{"serviceAccountToken": {
                "audience": AUDIENCE,
                "expirationSeconds": cfg.token_expiration_seconds,
                "path": "token",
            }}]}}),
        ),
    ];
    if let Ca::ConfigMap { name, key } = &cfg.ca {
        v.push((
            CA_VOLUME,
            json!({"name": CA_VOLUME, "configMap": {"name": name, "items": [{"key": key, "path": "ca.crt"}]}}),
        ));
    }
    v
}

/// The field that says what kind of volume a reserved name must be.
pub fn volume_source(name: &str) -> &'static str {
    match name {
        TOKEN_VOLUME => "emptyDir",
        SA_TOKEN_VOLUME => "projected",
        _ => "configMap",
    }
}

/// The fetcher container.
pub fn fetcher(cfg: &Injection, mode: Mode) -> Value {
    let ca_file = match &cfg.ca {
        Ca::ConfigMap { .. } => Some(format!("{CA_DIR}/ca.crt")),
        Ca::File(path) => Some(path.clone()),
        Ca::Inline(_) => None,
    };
    let mut args = vec![
        if mode.refresh { "refresh" } else { "fetch" }.to_owned(),
        "--url".into(),
        cfg.url.clone(),
    ];
    if let Some(ca_file) = ca_file {
        args.extend(["--ca-file".into(), ca_file]);
    }
    args.extend([
        "--sa-token-file".into(),
        format!("{SA_TOKEN_DIR}/token"),
        "--out".into(),
        TOKEN_FILE.into(),
        "--deadline".into(),
        cfg.deadline.clone(),
        "--log-format".into(),
        "json".into(),
    ]);
    if !mode.fs_group {
        args.extend(["--file-mode".into(), "0444".into()]);
    }
    let mut mounts = vec![
        json!({"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR}),
        json!({"name": SA_TOKEN_VOLUME, "mountPath": SA_TOKEN_DIR, "readOnly": true}),
    ];
    if matches!(cfg.ca, Ca::ConfigMap { .. }) {
        mounts.push(json!({"name": CA_VOLUME, "mountPath": CA_DIR, "readOnly": true}));
    }
    let mut c = json!({
        "name": FETCHER,
        "image": cfg.image,
        "imagePullPolicy": cfg.image_pull_policy,
        "args": args,
        "volumeMounts": mounts,
        "resources": cfg.resources,
        "securityContext": cfg.security_context,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    });
    if let Ca::Inline(pem) = &cfg.ca {
        // In the pod spec, which only the pod's user may change (see `caPemFile`).
        c["env"] = json!([{"name": CA_PEM_ENV, "value": pem}]);
    }
    if mode.refresh {
        c["restartPolicy"] = json!("Always");
        // A sidecar counts as started once this passes, and only then do the next init
        // containers and the app start: so they never start before the file exists.
        c["startupProbe"] = json!({
            "exec": {"command": [FETCHER_BINARY, "print", TOKEN_FILE]},
            "periodSeconds": 2,
            "failureThreshold": 300,
        });
    }
    c
}

/// The mount added to every other container.
pub fn app_mount() -> Value {
    json!({"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": true})
}

/// The variable added to every other container.
pub fn app_env() -> Value {
    json!({"name": TOKEN_ENV, "value": TOKEN_FILE})
}
