//! The one Kubernetes API call iddecorator makes: reading the pod that a CONNECT (`kubectl
//! exec`, `attach`, `port-forward`) names, whose admission request carries only the options.
//! What it finds is handed to the pure decision as a [`PodLookup`]; every failure becomes
//! `Unavailable`, which the decision denies (fail closed).
use crate::decision::PodLookup;
use k8s_openapi::api::core::v1::Pod;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use std::time::Duration;

/// Reads pods' metadata, or explains why it cannot.
#[derive(Clone)]
pub struct PodReader {
    client: Result<Client, String>,
    timeout: Duration,
}

/// The Kubernetes client cannot be built from the kubeconfig given.
#[derive(Debug, thiserror::Error)]
#[error("cannot build a Kubernetes client from --kubeconfig: {0}")]
pub struct ClientError(String);

impl PodReader {
    /// A reader with no client: every lookup is `Unavailable(reason)`.
    pub fn none(reason: impl Into<String>) -> PodReader {
        PodReader {
            client: Err(reason.into()),
            timeout: Duration::ZERO,
        }
    }

    /// A client from the kubeconfig given, else the in-cluster service account. A kubeconfig
    /// that does not work is an error (the admin asked for it); no kubeconfig outside a
    /// cluster is not: CONNECT requests are then denied, and the log says why at start.
    pub async fn connect(
        kubeconfig: Option<Kubeconfig>,
        timeout: Duration,
    ) -> Result<PodReader, ClientError> {
        let config = match kubeconfig {
            Some(kc) => kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| ClientError(e.to_string()))?,
            None => match kube::Config::incluster() {
                Ok(c) => c,
                Err(e) => {
                    let reason =
                        format!("no Kubernetes client: no --kubeconfig and not in a cluster ({e})");
                    tracing::warn!(%reason, "exec, attach and port-forward into decorated pods will be denied");
                    return Ok(PodReader::none(reason));
                }
            },
        };
        let mut config = config;
        config.connect_timeout = Some(timeout);
        config.read_timeout = Some(timeout);
        let client = Client::try_from(config).map_err(|e| ClientError(e.to_string()))?;
        Ok(PodReader {
            client: Ok(client),
            timeout,
        })
    }

    /// The pod's metadata (all the decision needs), bounded by the timeout.
    pub async fn read(&self, namespace: &str, name: &str) -> PodLookup {
        let client = match &self.client {
            Ok(c) => c.clone(),
            Err(reason) => return PodLookup::Unavailable(reason.clone()),
        };
        let api: Api<Pod> = Api::namespaced(client, namespace);
        match tokio::time::timeout(self.timeout, api.get_metadata_opt(name)).await {
            Ok(Ok(Some(pod))) => PodLookup::Found(Box::new(pod.metadata)),
            Ok(Ok(None)) => PodLookup::NotFound,
            Ok(Err(e)) => {
                tracing::warn!(namespace, name, error = %e, "cannot read the pod of a CONNECT request");
                PodLookup::Unavailable(format!("reading it failed: {e}"))
            }
            Err(_) => {
                tracing::warn!(
                    namespace,
                    name,
                    timeout_ms = self.timeout.as_millis() as u64,
                    "reading the pod of a CONNECT request timed out"
                );
                PodLookup::Unavailable(format!(
                    "the Kubernetes API did not answer within {:?}",
                    self.timeout
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_a_client_every_lookup_is_unavailable_with_the_reason() {
        let r = PodReader::none("no Kubernetes client");
        assert_eq!(
            r.read("ns", "p").await,
            PodLookup::Unavailable("no Kubernetes client".into())
        );
    }

    #[tokio::test]
    async fn an_unreachable_apiserver_is_unavailable_within_the_timeout() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // A listener that accepts and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let kc: Kubeconfig = serde_yaml_ng::from_str(&format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'http://{addr}'}}}}]\n\
             users: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\n\
             current-context: x\n"
        ))
        .unwrap();
        let r = PodReader::connect(Some(kc), Duration::from_millis(300))
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let PodLookup::Unavailable(reason) = r.read("ns", "p").await else {
            panic!("expected Unavailable");
        };
        assert!(started.elapsed() < Duration::from_secs(3), "{reason}");
    }
}
