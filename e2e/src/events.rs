//! The Kubernetes Events token-service writes about a workload or pod, read the way a user
//! would (`kubectl get events --field-selector involvedObject.name=<name>`).

use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams};

use crate::wait::{Poll, until};
use crate::{Error, KubeStep};

/// Events are written by a worker after the answer: a little patience.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// (reason, message) of every Event about the object named `name` in `namespace`.
pub async fn about(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Vec<(String, String)>, Error> {
    let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
    let list = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&params)
        .await
        .step("list the Events of an object")?;
    Ok(list
        .items
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect())
}

/// Waits for an Event about `name` with `reason` whose message contains `says`.
pub async fn wait_for(
    client: &Client,
    namespace: &str,
    name: &str,
    reason: &str,
    says: &str,
) -> Result<String, Error> {
    let what = format!("a {reason} Event about {namespace}/{name} saying {says:?}");
    until(&what, EVENT_TIMEOUT, || async {
        let events = about(client, namespace, name).await?;
        Ok::<_, Error>(
            match events.iter().find(|(r, m)| r == reason && m.contains(says)) {
                Some((_, message)) => Poll::Ready(message.clone()),
                None => Poll::Pending(format!("{events:?}")),
            },
        )
    })
    .await
}
