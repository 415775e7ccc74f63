//! The policy's `injection` section: what the injected fetcher looks like.
use k8s_openapi::api::core::v1::{ResourceRequirements, SecurityContext};
use serde::Deserialize;
use serde_json::{Value, json};

/// `injection:` as written in the policy file; every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InjectionFile {
    /// init-fetcher image; default `kube2hadoop/init-fetcher:<this version>`.
    pub image: Option<String>,
    /// `Always`, `IfNotPresent` or `Never`; default `IfNotPresent`.
    pub image_pull_policy: Option<String>,
    /// The token service as pods reach it; default `https://token-service.kube2hadoop.svc:8443`.
    pub token_service_url: Option<String>,
    /// The token service's CA from a ConfigMap in the pod's namespace (default
    /// `{name: kube2hadoop-ca, key: ca.crt}`).
    pub ca_config_map: Option<CaConfigMap>,
    /// Or a path inside the fetcher image (e.g. a custom image with the CA built in).
    pub ca_file: Option<String>,
    /// Recommended: a PEM file iddecorator reads when it loads the policy and puts into the
    /// fetcher's environment (`K2H_FETCH_CA_PEM`). It is then part of the pod spec, which only
    /// the pod's user may change; a ConfigMap in the pod's namespace can be replaced by any
    /// editor of that namespace, who could then impersonate the token service to the fetcher.
    pub ca_pem_file: Option<String>,
    /// How long the fetcher retries before the pod fails to start; default `2m`.
    pub deadline: Option<String>,
    /// Replaces the default requests (cpu 10m, memory 16Mi) and limits (memory 64Mi).
    pub resources: Option<ResourceRequirements>,
    /// Replaces the default (non-root 65532, read-only root, no privilege escalation, all
    /// capabilities dropped, RuntimeDefault seccomp).
    pub security_context: Option<SecurityContext>,
    /// Lifetime of the projected service-account token (at least 600); default 3600.
    pub token_expiration_seconds: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaConfigMap {
    pub name: String,
    #[serde(default = "default_ca_key")]
    pub key: String,
}

fn default_ca_key() -> String {
    "ca.crt".to_owned()
}

/// Where the fetcher finds the token service's CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ca {
    ConfigMap {
        name: String,
        key: String,
    },
    File(String),
    /// The PEM text itself, from `caPemFile`.
    Inline(String),
}

/// The checked section.
#[derive(Debug, Clone, PartialEq)]
pub struct Injection {
    pub image: String,
    pub image_pull_policy: String,
    pub url: String,
    pub ca: Ca,
    pub deadline: String,
    pub resources: Value,
    pub security_context: Value,
    pub token_expiration_seconds: i64,
}

impl Default for Injection {
    fn default() -> Injection {
        // The defaults are constants that pass every check below (and read no file).
        InjectionFile::default().compile(&mut Vec::new(), &|_| Err("no files".into()))
    }
}

/// Reads a file the policy names (`caPemFile`), or says why it cannot.
pub type ReadFile<'a> = &'a dyn Fn(&str) -> Result<String, String>;

impl InjectionFile {
    /// Check every field, pushing problems (prefixed `injection.`), and fill in defaults.
    /// `read` reads `caPemFile`.
    pub fn compile(self, problems: &mut Vec<String>, read: ReadFile) -> Injection {
        let mut problem = |s: String| problems.push(format!("injection.{s}"));
        let image = self
            .image
            .unwrap_or_else(|| format!("kube2hadoop/init-fetcher:{}", env!("CARGO_PKG_VERSION")));
        if image.trim().is_empty() || image.chars().any(char::is_whitespace) {
            problem(format!(
                "image {image:?}: give an image reference without spaces"
            ));
        }
        let image_pull_policy = self
            .image_pull_policy
            .unwrap_or_else(|| "IfNotPresent".to_owned());
        if !["Always", "IfNotPresent", "Never"].contains(&image_pull_policy.as_str()) {
            problem(format!(
                "imagePullPolicy {image_pull_policy:?}: use Always, IfNotPresent or Never"
            ));
        }
        let url = self
            .token_service_url
            .unwrap_or_else(|| "https://token-service.kube2hadoop.svc:8443".to_owned());
        if !url.starts_with("https://") || url.len() <= "https://".len() {
            problem(format!(
                "tokenServiceUrl {url:?}: give the token service's https:// address"
            ));
        }
        let ca = match (self.ca_config_map, self.ca_file, self.ca_pem_file) {
            (None, None, Some(path)) => Ca::Inline(ca_pem(&path, read).unwrap_or_else(|e| {
                problem(format!("caPemFile {path:?}: {e}"));
                String::new()
            })),
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
                problem(
                    "caPemFile, caConfigMap and caFile: give one of them, not several".to_owned(),
                );
                Ca::File(String::new())
            }
            (Some(cm), None, None) => {
                if cm.name.trim().is_empty() || cm.key.trim().is_empty() {
                    problem("caConfigMap: give both name and key".to_owned());
                }
                Ca::ConfigMap {
                    name: cm.name,
                    key: cm.key,
                }
            }
            (None, Some(path), None) => {
                if !path.starts_with('/') {
                    problem(format!("caFile {path:?}: give an absolute path"));
                }
                Ca::File(path)
            }
            (None, None, None) => Ca::ConfigMap {
                name: "kube2hadoop-ca".to_owned(),
                key: default_ca_key(),
            },
        };
        let deadline = self.deadline.unwrap_or_else(|| "2m".to_owned());
        // The fetcher's `--deadline` takes the same syntax and refuses zero.
        match k2h_contract::duration::parse(&deadline) {
            Err(e) => problem(format!("deadline: {e}")),
            Ok(d) if d.is_zero() => problem("deadline must be more than zero".to_owned()),
            Ok(_) => {}
        }
        let token_expiration_seconds = self.token_expiration_seconds.unwrap_or(3600);
        if !(600..=(1 << 32)).contains(&token_expiration_seconds) {
            problem(format!(
                "tokenExpirationSeconds {token_expiration_seconds}: Kubernetes needs at least 600"
            ));
        }
        let resources = match self.resources {
            Some(r) => serde_json::to_value(r).unwrap_or_default(),
            None => {
                json!({"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}})
            }
        };
        let security_context = match self.security_context {
            Some(s) => serde_json::to_value(s).unwrap_or_default(),
            None => json!({
                "runAsNonRoot": true,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            }),
        };
        Injection {
            image,
            image_pull_policy,
            url,
            ca,
            deadline,
            resources,
            security_context,
            token_expiration_seconds,
        }
    }
}

/// The PEM text of `path`, checked to hold certificates and nothing else (no private key).
fn ca_pem(path: &str, read: ReadFile) -> Result<String, String> {
    use rustls::pki_types::pem::{PemObject as _, SectionKind};
    let text = read(path)?;
    let mut certs = 0;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(text.as_bytes()) {
        match section.map_err(|e| format!("not PEM: {e}"))? {
            (SectionKind::Certificate, _) => certs += 1,
            (kind, _) => {
                return Err(format!(
                    "holds a {kind:?}; give only the token service's CA certificate(s)"
                ));
            }
        }
    }
    if certs == 0 {
        return Err("holds no PEM certificate".to_owned());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn compile(yaml: &str) -> (Injection, Vec<String>) {
        let file: InjectionFile = serde_yaml_ng::from_str(yaml).unwrap();
        let mut problems = Vec::new();
        let read = |path: &str| match path {
            "/ca.pem" => Ok(PEM.to_owned()),
            "/key.pem" => Ok(format!(
                "{PEM}-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"
            )),
            "/empty.pem" => Ok("# nothing\n".to_owned()),
            other => Err(format!("cannot read {other}: No such file or directory")),
        };
        (file.compile(&mut problems, &read), problems)
    }

    #[test]
    fn ca_pem_file_is_read_and_checked() {
        let (i, problems) = compile("{caPemFile: /ca.pem}");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(i.ca, Ca::Inline(PEM.into()));
        for (yaml, want) in [
            ("{caPemFile: /key.pem}", "holds a PrivateKey"),
            ("{caPemFile: /empty.pem}", "holds no PEM certificate"),
            ("{caPemFile: /nope}", "No such file"),
            ("{caPemFile: /ca.pem, caFile: /x}", "not several"),
            (
                "{caPemFile: /ca.pem, caConfigMap: {name: a}}",
                "not several",
            ),
        ] {
            let (_, problems) = compile(yaml);
            assert_eq!(problems.len(), 1, "{yaml}: {problems:?}");
            assert!(problems[0].contains(want), "{yaml}: {problems:?}");
        }
    }

    #[test]
    fn defaults_are_valid() {
        let (i, problems) = compile("{}");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(i, Injection::default());
        assert!(i.image.starts_with("kube2hadoop/init-fetcher:"));
        assert_eq!(
            i.ca,
            Ca::ConfigMap {
                name: "kube2hadoop-ca".into(),
                key: "ca.crt".into()
            }
        );
        assert_eq!(i.security_context["runAsNonRoot"], true);
    }

    #[test]
    fn typed_resources_and_security_context() {
        let (i, problems) = compile(
            "{resources: {limits: {memory: 32Mi}}, securityContext: {runAsUser: 1000}, caFile: /etc/ca.pem}",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(i.resources, json!({"limits": {"memory": "32Mi"}}));
        assert_eq!(i.security_context, json!({"runAsUser": 1000}));
        assert_eq!(i.ca, Ca::File("/etc/ca.pem".into()));
        assert!(serde_yaml_ng::from_str::<InjectionFile>("{resources: {limits: 3}}").is_err());
    }

    #[test]
    fn every_problem_is_reported() {
        let (_, problems) = compile(
            "{image: '', imagePullPolicy: Sometimes, tokenServiceUrl: 'http://x', caFile: x, caConfigMap: {name: a}, deadline: soon, tokenExpirationSeconds: 60}",
        );
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(problems.iter().all(|p| p.starts_with("injection.")));
    }

    #[test]
    fn deadlines_take_the_fetchers_syntax() {
        for ok in ["2m", "90s", "1m30s", "500ms", "1h", "120"] {
            let (_, problems) = compile(&format!("deadline: \"{ok}\"\ncaPemFile: x\n"));
            assert!(
                !problems.iter().any(|p| p.contains("deadline")),
                "{ok}: {problems:?}"
            );
        }
        for bad in ["", "m", "2 m", "1.5s", "2d", "0s"] {
            let (_, problems) = compile(&format!("deadline: \"{bad}\"\n"));
            assert!(
                problems.iter().any(|p| p.contains("deadline")),
                "{bad}: {problems:?}"
            );
        }
    }
}
