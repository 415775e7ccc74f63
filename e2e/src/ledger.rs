//! A ledger namespace of one's own for each token-service a test starts.
//!
//! token-service keeps its ledger Secrets and its leader Lease in `--ledger-namespace`. With the
//! default (`kube2hadoop`) every service the suite starts would compete for one Lease and renew,
//! re-issue or cancel each other's entries; a namespace per test keeps them apart, and deleting it
//! at the end leaves nothing for the next test file to trip on.

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};

use crate::objects::TEST_LABEL;
use crate::{Bed, Error, KubeStep, TestId};

/// A namespace created for one test's ledger; call [`LedgerNamespace::delete`] at the end.
#[derive(Debug)]
pub struct LedgerNamespace {
    name: String,
}

impl LedgerNamespace {
    /// Creates `<test id>-ledger`, labelled with the test id so a leftover is easy to find.
    pub async fn create(bed: &Bed, id: &TestId) -> Result<LedgerNamespace, Error> {
        let name = format!("{}-ledger", id.name());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(TEST_LABEL.to_owned(), id.name().to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(bed.admin.clone())
            .create(&PostParams::default(), &ns)
            .await
            .step(format!("creating the ledger namespace {name}"))?;
        Ok(LedgerNamespace { name })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The decoded ledger records of `workload` (`"<Kind> <namespace>/<name>"`, as the service
    /// annotates its Secrets), one per Secret.
    pub async fn records(
        &self,
        bed: &Bed,
        workload: &str,
    ) -> Result<Vec<serde_json::Value>, Error> {
        let secrets: Api<Secret> = Api::namespaced(bed.admin.clone(), &self.name);
        let list = secrets
            .list(
                &ListParams::default()
                    .labels("app.kubernetes.io/managed-by=kube2hadoop-token-service"),
            )
            .await
            .step("listing the ledger Secrets")?;
        Ok(list
            .items
            .into_iter()
            .filter(|s| {
                s.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("kube2hadoop.io/workload"))
                    .is_some_and(|w| w == workload)
            })
            .filter_map(|s| s.data?.get("record.json").cloned())
            .filter_map(|b| serde_json::from_slice(&b.0).ok())
            .collect())
    }

    /// Deletes the namespace with its Secrets and Lease. Failures go to stderr only: cleanup
    /// must not hide the test's own result.
    pub async fn delete(&self, bed: &Bed) {
        let api = Api::<Namespace>::all(bed.admin.clone());
        if let Err(e) = api.delete(&self.name, &DeleteParams::background()).await {
            eprintln!("cleanup: deleting namespace {}: {e}", self.name);
        }
    }
}
