//! The cluster's kubectl as a subprocess: rendering Kustomize overlays, server-side dry runs,
//! `auth can-i`, and kubeconfigs holding a service account's token, for checks that must go
//! through exactly what an admin would type.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The bed's own kubectl; without it, `kubectl` from PATH (another cluster, e.g. kind).
const KUBECTL_ENV: &str = "K2H_E2E_KUBECTL";
/// Every invocation is bounded: a stuck apiserver fails the test instead of hanging it.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum KubectlError {
    #[error(
        "cannot run {program} (set {KUBECTL_ENV} to the cluster's kubectl, e.g. by `source \
         e2e/.state/env`): {source}"
    )]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`kubectl {args}` gave no answer within {}s", RUN_TIMEOUT.as_secs())]
    Timeout { args: String },
    #[error("`kubectl {args}` failed ({status}):\n{stderr}")]
    Failed {
        args: String,
        status: String,
        stderr: String,
    },
    #[error("`kubectl {args}` did not print the JSON asked for: {source}")]
    NotJson {
        args: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("`kubectl {args}` printed {found}, expected {expected}")]
    Unexpected {
        args: String,
        found: String,
        expected: &'static str,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a finished kubectl printed.
pub struct Output {
    pub success: bool,
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

/// kubectl with a fixed kubeconfig and context (each `None`: kubectl's own defaults).
#[derive(Clone, Debug)]
pub struct Kubectl {
    program: PathBuf,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
}

impl Kubectl {
    /// `$K2H_E2E_KUBECTL`, else `kubectl`, with `$KUBECONFIG` and its current context.
    pub fn from_env() -> Kubectl {
        Kubectl {
            program: std::env::var_os(KUBECTL_ENV)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("kubectl")),
            kubeconfig: None,
            context: None,
        }
    }

    pub fn context(&self, context: &str) -> Kubectl {
        Kubectl {
            context: Some(context.to_owned()),
            ..self.clone()
        }
    }

    /// The same binary with only the credentials in `kubeconfig`.
    pub fn kubeconfig(&self, kubeconfig: &Path) -> Kubectl {
        Kubectl {
            program: self.program.clone(),
            kubeconfig: Some(kubeconfig.to_path_buf()),
            context: None,
        }
    }

    /// Runs kubectl; a non-zero exit is returned, not an error (`auth can-i` answers by it).
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<Output, KubectlError> {
        let mut cmd = Command::new(&self.program);
        if let Some(k) = &self.kubeconfig {
            cmd.arg("--kubeconfig").arg(k);
        }
        if let Some(c) = &self.context {
            cmd.args(["--context", c]);
        }
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let shown = args.join(" ");
        let spawn_error = |source| KubectlError::Spawn {
            program: self.program.display().to_string(),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn_error)?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // Written while kubectl reads; a kubectl that exits early shows up in its status.
            let text = text.to_owned();
            tokio::spawn(async move {
                let _ = pipe.write_all(text.as_bytes()).await;
            });
        }
        let out = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| KubectlError::Timeout {
                args: shown.clone(),
            })?
            .map_err(spawn_error)?;
        Ok(Output {
            success: out.status.success(),
            status: out.status.to_string(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs kubectl and returns its stdout; a non-zero exit is an error with its stderr.
    pub async fn ok(&self, args: &[&str], stdin: Option<&str>) -> Result<String, KubectlError> {
        let out = self.run(args, stdin).await?;
        if out.success {
            Ok(out.stdout)
        } else {
            Err(KubectlError::Failed {
                args: args.join(" "),
                status: out.status,
                stderr: out.stderr,
            })
        }
    }

    /// Runs kubectl with `-o json` among `args` and parses what it prints.
    pub async fn json(&self, args: &[&str], stdin: Option<&str>) -> Result<Value, KubectlError> {
        let text = self.ok(args, stdin).await?;
        // Client-side dry runs print one object after another instead of a List.
        let mut objects = serde_json::Deserializer::from_str(&text)
            .into_iter::<Value>()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| KubectlError::NotJson {
                args: args.join(" "),
                source,
            })?;
        Ok(match objects.len() {
            1 => objects.remove(0),
            _ => json!({"apiVersion": "v1", "kind": "List", "items": objects}),
        })
    }

    /// Whether this kubectl's user may `verb` the `resource` (`pods`, `pods/exec`,
    /// `tfjobs.kubeflow.org`) in `namespace` ("": every namespace, or a cluster-scoped kind),
    /// by a SelfSubjectAccessReview: what `kubectl auth can-i` does, without its discovery
    /// step, which fails for kinds the cluster has not installed (e.g. PyTorchJob).
    pub async fn can_i(
        &self,
        verb: &str,
        resource: &str,
        namespace: &str,
    ) -> Result<bool, KubectlError> {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        let (resource, group) = resource.split_once('.').unwrap_or((resource, ""));
        self.access_review(json!({"resourceAttributes": {
            "verb": verb, "group": group, "resource": resource,
            "subresource": subresource, "namespace": namespace,
        }}))
        .await
    }

    /// Whether this kubectl's identity may `verb` the non-resource URL `path`
    /// (`/openid/v1/jwks`).
    pub async fn can_i_path(&self, verb: &str, path: &str) -> Result<bool, KubectlError> {
        self.access_review(json!({"nonResourceAttributes": {"verb": verb, "path": path}}))
            .await
    }

    async fn access_review(&self, spec: serde_json::Value) -> Result<bool, KubectlError> {
        let review = json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": spec,
        });
        // No client-side validation: it lists CRDs, which the account under test may not.
        let args = ["create", "--validate=false", "-o", "json", "-f", "-"];
        let answer = self.json(&args, Some(&review.to_string())).await?;
        answer["status"]["allowed"]
            .as_bool()
            .ok_or_else(|| KubectlError::Unexpected {
                args: args.join(" "),
                found: answer["status"].to_string(),
                expected: "a SelfSubjectAccessReview status",
            })
    }

    /// Writes into `dir` a kubeconfig that reaches this kubectl's cluster with nothing but a
    /// fresh TokenRequest token of `namespace/service_account` (mode 0600: it is a credential).
    pub async fn service_account_kubeconfig(
        &self,
        dir: &Path,
        namespace: &str,
        service_account: &str,
    ) -> Result<PathBuf, KubectlError> {
        let token = self
            .ok(
                &[
                    "create",
                    "token",
                    service_account,
                    "-n",
                    namespace,
                    "--duration=10m",
                ],
                None,
            )
            .await?;
        let view_args = [
            "config",
            "view",
            "--raw",
            "--minify",
            "--flatten",
            "-o",
            "json",
        ];
        let view = self.json(&view_args, None).await?;
        let cluster = view
            .pointer("/clusters/0/cluster")
            .cloned()
            .ok_or_else(|| KubectlError::Unexpected {
                args: view_args.join(" "),
                found: "no cluster".into(),
                expected: "the current context's cluster",
            })?;
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "bed", "cluster": cluster}],
            "users": [{"name": service_account, "user": {"token": token.trim()}}],
            "contexts": [{"name": service_account, "context": {
                "cluster": "bed", "user": service_account, "namespace": namespace}}],
            "current-context": service_account,
        });
        let path = dir.join(format!("{namespace}-{service_account}.kubeconfig"));
        write_private(&path, config.to_string().as_bytes())?;
        Ok(path)
    }
}

/// Creates `path` readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KubectlError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |source| KubectlError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(failed)?;
    file.write_all(bytes).map_err(failed)
}

/// The objects of a `kubectl ... -o json` answer: a `List`'s items, or the one object.
pub fn items(answer: &Value) -> Vec<Value> {
    match answer.get("items").and_then(Value::as_array) {
        Some(items) if answer["kind"] == "List" => items.clone(),
        _ => vec![answer.clone()],
    }
}

/// The object of `kind` named `name` among `objects`.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}
