//! `iddecorator certs`: a CA and serving certificates for installs without cert-manager.
//!
//! Writes everything the `static-certs` overlay needs as a Kustomize *Component* (so its patch
//! reaches the webhook configurations of the base): the serving Secrets and a patch setting the
//! caBundle of both webhook configurations. The CA's private key is never written: nothing
//! else can be signed with it, and rotating means running the command again and re-applying.
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::{Value, json};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The webhook configurations of `manifests/base` (and `e2e/cluster/webhooks.yaml.tmpl`).
pub const WEBHOOK_CONFIGURATION: &str = "kube2hadoop-iddecorator";
pub const MUTATING_WEBHOOK: &str = "mutate.iddecorator.kube2hadoop.io";
pub const VALIDATING_WEBHOOK: &str = "validate.iddecorator.kube2hadoop.io";
/// Exec, attach and port-forward into pods.
pub const ACCESS_WEBHOOK: &str = "access.iddecorator.kube2hadoop.io";
/// TokenRequests for audience kube2hadoop.
pub const TOKENS_WEBHOOK: &str = "tokens.iddecorator.kube2hadoop.io";
/// The ConfigMap the injected fetcher reads the token service's CA from (policy `injection`).
pub const CA_CONFIGMAP: &str = "kube2hadoop-ca";
const MAX_DAYS: u32 = 3650;

#[derive(Debug, clap::Args)]
pub struct CertsArgs {
    /// Name of iddecorator's Service (the name the kube-apiserver connects to).
    #[arg(long)]
    pub service: String,
    /// Namespace of that Service, and of the Secrets written.
    #[arg(long)]
    pub namespace: String,
    /// Also issue a serving certificate for the token service's Service of this name (same
    /// namespace, same CA: the CA the injected fetcher trusts).
    #[arg(long)]
    pub token_service: Option<String>,
    /// Directory to write into (created if missing; existing files are replaced).
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
    /// Validity of the CA and the certificates, in days.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// When rotating: the previous ca.crt, trusted next to the new CA until the next run, so
    /// no call fails while the pods still serve the old certificate.
    #[arg(long)]
    pub also_trust: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error(
        "--{flag} {value:?} is not a valid Kubernetes name: use at most 63 lowercase letters, \
         digits and '-', starting with a letter and ending with a letter or digit"
    )]
    Name { flag: &'static str, value: String },
    #[error("--days {0} is out of range: use 1 to {MAX_DAYS}")]
    Days(u32),
    #[error("--also-trust {path}: cannot read it: {source}")]
    ReadTrust {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--also-trust {path}: not a PEM certificate (give the previous run's ca.crt)")]
    NotPem { path: PathBuf },
    #[error("cannot generate the {what}: {source}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("cannot render {what}: {source}")]
    Render {
        what: &'static str,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("cannot create the output directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path} (check the directory is writable): {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One serving certificate and its key.
pub struct Serving {
    pub service: String,
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    key_pem: String,
}

// By hand: the key must never reach a log line or an error message.
impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving")
            .field("service", &self.service)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A fresh CA (certificate only) and the serving certificates it signed.
#[derive(Debug)]
pub struct Bundle {
    pub namespace: String,
    pub ca_pem: String,
    pub ca_der: Vec<u8>,
    /// What clients trust: the new CA, then any `--also-trust` one.
    pub trust_pem: String,
    pub webhook: Serving,
    pub token_service: Option<Serving>,
}

/// The DNS names a Service answers to inside the cluster.
pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// Checks the arguments and generates the CA and certificates (nothing is written).
pub fn generate(args: &CertsArgs) -> Result<Bundle, CertsError> {
    check_name("service", &args.service)?;
    check_name("namespace", &args.namespace)?;
    if let Some(ts) = &args.token_service {
        check_name("token-service", ts)?;
    }
    if !(1..=MAX_DAYS).contains(&args.days) {
        return Err(CertsError::Days(args.days));
    }
    let previous = match &args.also_trust {
        None => String::new(),
        Some(path) => read_previous_ca(path)?,
    };
    let now = SystemTime::now();
    // A little slack before now: the apiserver's clock may be behind this machine's.
    let not_before = now - Duration::from_secs(300);
    let not_after = now + Duration::from_secs(u64::from(args.days) * 86_400);
    let generated = |what| move |source| CertsError::Generate { what, source };

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(generated("CA"))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!("kube2hadoop CA ({})", args.namespace),
    );
    ca_params.not_before = not_before.into();
    ca_params.not_after = not_after.into();
    let ca_key = KeyPair::generate().map_err(generated("CA key"))?;
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(generated("CA"))?;

    let issue = |service: &str| -> Result<Serving, CertsError> {
        let names = service_names(service, &args.namespace);
        let mut params =
            CertificateParams::new(names.clone()).map_err(generated("serving certificate"))?;
        params.distinguished_name.push(
            DnType::CommonName,
            format!("{service}.{}.svc", args.namespace),
        );
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let key = KeyPair::generate().map_err(generated("serving key"))?;
        let cert = params
            .signed_by(&key, &ca)
            .map_err(generated("serving certificate"))?;
        Ok(Serving {
            service: service.to_owned(),
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
        })
    };
    Ok(Bundle {
        namespace: args.namespace.clone(),
        trust_pem: format!("{}{previous}", ca.pem()),
        ca_pem: ca.pem(),
        ca_der: ca.der().to_vec(),
        webhook: issue(&args.service)?,
        token_service: args.token_service.as_deref().map(issue).transpose()?,
    })
}

/// One file to write; `secret` ones are created with mode 0600.
pub struct OutFile {
    pub name: String,
    pub text: String,
    pub secret: bool,
}

/// The files of the Kustomize Component, named as the `static-certs` overlay expects.
pub fn render(bundle: &Bundle) -> Result<Vec<OutFile>, CertsError> {
    let file = |name: &str, text: String, secret| OutFile {
        name: name.to_owned(),
        text,
        secret,
    };
    let mut out = vec![
        file("ca.crt", bundle.ca_pem.clone(), false),
        file("tls.crt", bundle.webhook.cert_pem.clone(), false),
        file("tls.key", bundle.webhook.key_pem.clone(), true),
    ];
    let mut resources = vec![secret_file_name(&bundle.webhook)];
    out.push(file(
        &secret_file_name(&bundle.webhook),
        secret_manifest(bundle, &bundle.webhook)?,
        true,
    ));
    if let Some(ts) = &bundle.token_service {
        out.push(file(
            &format!("{}.crt", ts.service),
            ts.cert_pem.clone(),
            false,
        ));
        out.push(file(
            &format!("{}.key", ts.service),
            ts.key_pem.clone(),
            true,
        ));
        out.push(file(
            &secret_file_name(ts),
            secret_manifest(bundle, ts)?,
            true,
        ));
        resources.push(secret_file_name(ts));
        // Not part of the Component: it belongs in every namespace whose pods use injection.
        out.push(file(
            &format!("{CA_CONFIGMAP}.configmap.yaml"),
            ca_configmap(bundle)?,
            false,
        ));
    }
    out.push(file(
        "webhook-cabundle.patch.yaml",
        ca_bundle_patch(bundle)?,
        false,
    ));
    out.push(file("kustomization.yaml", component(&resources)?, false));
    Ok(out)
}

/// Writes `files` into `dir`; keys are never readable by others, not even for a moment.
pub fn write_all(dir: &Path, files: &[OutFile]) -> Result<(), CertsError> {
    std::fs::create_dir_all(dir).map_err(|source| CertsError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    for f in files {
        let path = dir.join(&f.name);
        let failed = |source| CertsError::Write {
            path: path.clone(),
            source,
        };
        // Removed first: `mode` applies only when the file is created.
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(failed(e)),
            _ => {}
        }
        let mut options = std::fs::OpenOptions::new();
        options
            .write(true)
            .create_new(true)
            .mode(if f.secret { 0o600 } else { 0o644 });
        let mut handle = options.open(&path).map_err(failed)?;
        handle.write_all(f.text.as_bytes()).map_err(failed)?;
    }
    Ok(())
}

/// `iddecorator certs`: generate, write, and say what to do next (never printing a key).
pub fn run(args: &CertsArgs) -> Result<Vec<String>, CertsError> {
    let bundle = generate(args)?;
    let files = render(&bundle)?;
    write_all(&args.out_dir, &files)?;
    Ok(files.into_iter().map(|f| f.name).collect())
}

fn read_previous_ca(path: &Path) -> Result<String, CertsError> {
    let text = std::fs::read_to_string(path).map_err(|source| CertsError::ReadTrust {
        path: path.to_path_buf(),
        source,
    })?;
    // Certificates only: a key given here by mistake must not end up in a caBundle.
    if !text.contains("-----BEGIN CERTIFICATE-----") || text.contains("PRIVATE KEY") {
        return Err(CertsError::NotPem {
            path: path.to_path_buf(),
        });
    }
    let mut text = text.trim_end().to_owned();
    text.push('\n');
    Ok(text)
}

fn secret_name(s: &Serving) -> String {
    format!("{}-tls", s.service)
}

fn secret_file_name(s: &Serving) -> String {
    format!("{}.secret.yaml", secret_name(s))
}

fn yaml(what: &'static str, header: &str, docs: &[Value]) -> Result<String, CertsError> {
    let mut text = format!("# Generated by `iddecorator certs`. {header}\n");
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            text.push_str("---\n");
        }
        text.push_str(
            &serde_yaml_ng::to_string(doc).map_err(|source| CertsError::Render { what, source })?,
        );
    }
    Ok(text)
}

fn secret_manifest(bundle: &Bundle, s: &Serving) -> Result<String, CertsError> {
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(s), "namespace": bundle.namespace},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": STANDARD.encode(&s.cert_pem),
            "tls.key": STANDARD.encode(&s.key_pem),
            "ca.crt": STANDARD.encode(&bundle.trust_pem),
        },
    });
    yaml(
        "the Secret",
        "Holds a private key: do not commit it.",
        &[doc],
    )
}

fn ca_configmap(bundle: &Bundle) -> Result<String, CertsError> {
    let doc = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CA_CONFIGMAP},
        "data": {"ca.crt": bundle.trust_pem},
    });
    yaml(
        "the CA ConfigMap",
        "Apply in each namespace using injection: kubectl apply -n NS -f THIS_FILE",
        &[doc],
    )
}

fn ca_bundle_patch(bundle: &Bundle) -> Result<String, CertsError> {
    let ca = STANDARD.encode(&bundle.trust_pem);
    // A strategic merge patch: `webhooks` merge by name, so every webhook is listed.
    let doc = |kind: &str, webhooks: &[&str]| {
        let webhooks: Vec<_> = webhooks
            .iter()
            .map(|name| json!({"name": name, "clientConfig": {"caBundle": ca}}))
            .collect();
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind,
            "metadata": {"name": WEBHOOK_CONFIGURATION},
            "webhooks": webhooks,
        })
    };
    yaml(
        "the caBundle patch",
        "Sets the CA the kube-apiserver trusts for iddecorator.",
        &[
            doc("MutatingWebhookConfiguration", &[MUTATING_WEBHOOK]),
            doc(
                "ValidatingWebhookConfiguration",
                &[VALIDATING_WEBHOOK, ACCESS_WEBHOOK, TOKENS_WEBHOOK],
            ),
        ],
    )
}

fn component(resources: &[String]) -> Result<String, CertsError> {
    let doc = json!({
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "resources": resources,
        "patches": [{"path": "webhook-cabundle.patch.yaml"}],
    });
    yaml(
        "the Kustomize Component",
        "Used by manifests/overlays/static-certs.",
        &[doc],
    )
}

/// An RFC 1035 label, what Kubernetes requires of Service and Namespace names.
fn check_name(flag: &'static str, value: &str) -> Result<(), CertsError> {
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(CertsError::Name {
            flag,
            value: value.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    fn args(token_service: Option<&str>, dir: &Path) -> CertsArgs {
        CertsArgs {
            service: "iddecorator".into(),
            namespace: "kube2hadoop".into(),
            token_service: token_service.map(str::to_owned),
            out_dir: dir.to_path_buf(),
            days: 30,
            also_trust: None,
        }
    }

    fn verifier(ca_der: &[u8]) -> Arc<WebPkiServerVerifier> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca_der.to_vec()))
            .expect("the CA is a usable trust anchor");
        WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .expect("verifier")
    }

    fn verifies(v: &WebPkiServerVerifier, leaf: &[u8], name: &str) -> bool {
        let name = ServerName::try_from(name.to_owned()).expect("dns name");
        v.verify_server_cert(
            &CertificateDer::from(leaf.to_vec()),
            &[],
            &name,
            &[],
            UnixTime::now(),
        )
        .is_ok()
    }

    #[test]
    fn serving_certificates_verify_for_every_service_name_under_the_ca() {
        let dir = tempfile::tempdir().expect("tmp");
        let bundle = generate(&args(Some("token-service"), dir.path())).expect("generate");
        let v = verifier(&bundle.ca_der);
        for name in service_names("iddecorator", "kube2hadoop") {
            assert!(verifies(&v, &bundle.webhook.cert_der, &name), "{name}");
        }
        let ts = bundle.token_service.as_ref().expect("token service cert");
        assert!(verifies(&v, &ts.cert_der, "token-service.kube2hadoop.svc"));
        assert!(!verifies(&v, &ts.cert_der, "iddecorator.kube2hadoop.svc"));
        assert!(!verifies(
            &v,
            &bundle.webhook.cert_der,
            "iddecorator.other.svc"
        ));
        // Another run's CA does not vouch for this run's certificates.
        let other = generate(&args(None, dir.path())).expect("generate");
        assert!(!verifies(
            &verifier(&other.ca_der),
            &bundle.webhook.cert_der,
            "iddecorator.kube2hadoop.svc"
        ));
    }

    #[test]
    fn writes_the_component_with_private_keys_0600() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path().join("generated");
        let names = run(&args(Some("token-service"), &out)).expect("run");
        for expected in [
            "ca.crt",
            "tls.crt",
            "tls.key",
            "iddecorator-tls.secret.yaml",
            "token-service.crt",
            "token-service.key",
            "token-service-tls.secret.yaml",
            "kube2hadoop-ca.configmap.yaml",
            "webhook-cabundle.patch.yaml",
            "kustomization.yaml",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} not written"
            );
        }
        let mode = |name: &str| {
            std::fs::metadata(out.join(name))
                .expect("written")
                .permissions()
                .mode()
                & 0o777
        };
        for secret in [
            "tls.key",
            "token-service.key",
            "iddecorator-tls.secret.yaml",
            "token-service-tls.secret.yaml",
        ] {
            assert_eq!(mode(secret), 0o600, "{secret}");
        }
        // A second run replaces the files and keeps the modes.
        run(&args(Some("token-service"), &out)).expect("second run");
        assert_eq!(mode("tls.key"), 0o600);
    }

    #[test]
    fn manifests_carry_the_certificates_and_the_webhook_names() {
        let dir = tempfile::tempdir().expect("tmp");
        let bundle = generate(&args(None, dir.path())).expect("generate");
        let files = render(&bundle).expect("render");
        let text = |name: &str| {
            files
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.text.clone())
                .unwrap_or_else(|| panic!("{name} missing"))
        };
        let secret: Value =
            serde_yaml_ng::from_str(&text("iddecorator-tls.secret.yaml")).expect("yaml");
        assert_eq!(secret["type"], "kubernetes.io/tls");
        assert_eq!(secret["metadata"]["namespace"], "kube2hadoop");
        let crt = STANDARD
            .decode(secret["data"]["tls.crt"].as_str().expect("tls.crt"))
            .expect("base64");
        assert_eq!(crt, bundle.webhook.cert_pem.as_bytes());

        let patch = text("webhook-cabundle.patch.yaml");
        let docs: Vec<Value> = patch
            .split("\n---\n")
            .map(|d| serde_yaml_ng::from_str(d).expect("yaml"))
            .collect();
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(
            kinds,
            [
                "MutatingWebhookConfiguration",
                "ValidatingWebhookConfiguration"
            ]
        );
        let mut names = Vec::new();
        for d in &docs {
            assert_eq!(d["metadata"]["name"], WEBHOOK_CONFIGURATION);
            for w in d["webhooks"].as_array().expect("webhooks") {
                names.push(w["name"].as_str().expect("name"));
                let ca = STANDARD
                    .decode(w["clientConfig"]["caBundle"].as_str().expect("ca"))
                    .expect("base64");
                assert_eq!(ca, bundle.ca_pem.as_bytes());
            }
        }
        assert_eq!(
            names,
            [
                MUTATING_WEBHOOK,
                VALIDATING_WEBHOOK,
                ACCESS_WEBHOOK,
                TOKENS_WEBHOOK
            ]
        );
        assert!(!files.iter().any(|f| f.name.contains("configmap")));
    }

    #[test]
    fn a_rotation_trusts_the_previous_ca_too() {
        let dir = tempfile::tempdir().expect("tmp");
        let first = dir.path().join("first");
        run(&args(None, &first)).expect("first run");
        let old_ca = std::fs::read_to_string(first.join("ca.crt")).expect("ca.crt");
        let mut a = args(None, &dir.path().join("second"));
        a.also_trust = Some(first.join("ca.crt"));
        let bundle = generate(&a).expect("second run");
        assert!(bundle.trust_pem.starts_with(&bundle.ca_pem));
        assert!(bundle.trust_pem.ends_with(&old_ca));
        let patch = render(&bundle)
            .expect("render")
            .into_iter()
            .find(|f| f.name == "webhook-cabundle.patch.yaml")
            .expect("patch");
        assert!(patch.text.contains(&STANDARD.encode(&bundle.trust_pem)));

        a.also_trust = Some(first.join("tls.key"));
        let e = generate(&a).expect_err("a key is not a CA");
        assert!(e.to_string().contains("not a PEM certificate"), "{e}");
        assert!(!e.to_string().contains("PRIVATE"), "{e}");
    }

    #[test]
    fn keys_stay_out_of_debug_output() {
        let dir = tempfile::tempdir().expect("tmp");
        let bundle = generate(&args(Some("token-service"), dir.path())).expect("generate");
        let shown = format!("{bundle:?}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn bad_names_and_days_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        for (service, namespace, days) in [
            ("Iddecorator", "kube2hadoop", 30),
            ("iddecorator", "kube2hadoop.", 30),
            ("iddecorator-", "ns", 30),
            ("", "ns", 30),
            ("iddecorator", "kube2hadoop", 0),
            ("iddecorator", "kube2hadoop", MAX_DAYS + 1),
        ] {
            let mut a = args(None, dir.path());
            a.service = service.into();
            a.namespace = namespace.into();
            a.days = days;
            assert!(generate(&a).is_err(), "{service:?} {namespace:?} {days}");
        }
        let mut a = args(Some("Token_Service"), dir.path());
        a.days = 1;
        let e = generate(&a).expect_err("bad token service name");
        assert!(e.to_string().contains("--token-service"), "{e}");
    }
}
