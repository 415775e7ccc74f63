//! Ledger entries as Secrets: the credentials file and the tokens (secret) plus a JSON record
//! of their public facts and life so far. Writes use the Secret's resourceVersion, so two
//! replicas never overwrite each other's decisions unknowingly.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;
use zeroize::Zeroizing;

use super::record::Record;
use super::{Loaded, Persist, Saved};
use crate::clock::Clock;
use crate::hadoop::{IssuedToken, Renewal, TokenSet};
use crate::issued::Issued;
use crate::services::Selection;
use crate::workload::WorkloadKey;

pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "kube2hadoop-token-service");
/// Secrets named by the SHA-256 scheme carry it, and only they are listed: Secrets of the older
/// FNV names are left alone (never read, renewed or cancelled; their tokens expire by
/// themselves and each workload gets a new set at its next request).
pub const LEDGER_VERSION: (&str, &str) = ("kube2hadoop.io/ledger-version", "2");
pub const LABEL_WORKLOAD_UID: &str = "kube2hadoop.io/workload-uid";
pub const ANNOTATION_WORKLOAD: &str = "kube2hadoop.io/workload";
pub const ANNOTATION_USER: &str = "kube2hadoop.io/hadoop-user";
const KEY_FILE: &str = "credentials";
const KEY_TOKENS: &str = "tokens.json";
const KEY_RECORD: &str = "record.json";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("another replica changed ledger Secret {0} at the same time; retried on the next pass")]
    Conflict(String),
    #[error(
        "cannot {op} ledger Secret {name} at the Kubernetes API: {detail} (does the token \
         service's role allow get/list/create/update/delete on secrets in its namespace?)"
    )]
    Api {
        op: &'static str,
        name: String,
        detail: String,
    },
    #[error(
        "ledger Secret {name} is unreadable ({detail}); delete it to let the service start over"
    )]
    Corrupt { name: String, detail: String },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredToken {
    source: String,
    kind: String,
    service: String,
    url_string: String,
}

/// One ledger Secret, decoded.
pub struct Entry {
    pub name: String,
    pub resource_version: Option<String>,
    pub record: Record,
    pub issued: Arc<Issued>,
}

/// `k2h-` and 32 hex digits (128 bits) of the SHA-256 of the key: the same name on every
/// replica and every build, and no way to make two keys share a Secret on purpose (the record
/// inside is checked against the key as well).
///
/// A set of every configured service keeps the name it had before workloads could choose.
pub fn secret_name(workload: &WorkloadKey, user: &str, services: &Selection) -> String {
    let mut text = format!(
        "{}\n{}\n{}\n{}\n{}\n{user}",
        workload.namespace, workload.api_version, workload.kind, workload.name, workload.uid
    );
    if let Some(chosen) = services.stored() {
        text.push_str("\nservices=");
        text.push_str(&chosen);
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("k2h-{hex}")
}

pub fn to_secret(namespace: &str, record: &Record, issued: &Issued) -> Result<Secret, String> {
    let tokens: Vec<StoredToken> = issued
        .set
        .tokens
        .iter()
        .map(|t| StoredToken {
            source: t.source.clone(),
            kind: t.kind.clone(),
            service: t.service.clone(),
            url_string: t.url_string().to_owned(),
        })
        .collect();
    let tokens = Zeroizing::new(serde_json::to_vec(&tokens).map_err(|e| e.to_string())?);
    let record_json = serde_json::to_vec(record).map_err(|e| e.to_string())?;
    let w = &record.workload;
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(w, &record.hadoop_user, &issued.selection)),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
                (LEDGER_VERSION.0.to_owned(), LEDGER_VERSION.1.to_owned()),
                (LABEL_WORKLOAD_UID.to_owned(), w.uid.clone()),
            ])),
            annotations: Some(BTreeMap::from([
                (ANNOTATION_WORKLOAD.to_owned(), w.to_string()),
                (ANNOTATION_USER.to_owned(), record.hadoop_user.clone()),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (KEY_FILE.to_owned(), ByteString(issued.file.to_vec())),
            (KEY_TOKENS.to_owned(), ByteString(tokens.to_vec())),
            (KEY_RECORD.to_owned(), ByteString(record_json)),
        ])),
        ..Secret::default()
    })
}

/// A ledger entry's name and record, without its tokens: what a pass decides on.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    pub record: Record,
}

fn corrupt(name: &str, detail: String) -> StoreError {
    StoreError::Corrupt {
        name: name.to_owned(),
        detail,
    }
}

fn field<'s>(secret: &'s Secret, name: &str, key: &str) -> Result<&'s [u8], StoreError> {
    secret
        .data
        .as_ref()
        .ok_or_else(|| corrupt(name, "no data".into()))?
        .get(key)
        .map(|b| b.0.as_slice())
        .ok_or_else(|| corrupt(name, format!("no {key}")))
}

/// The record of a ledger Secret, checked against the Secret's name; also its set's services.
fn record_of(secret: &Secret) -> Result<(Listed, Selection), StoreError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let record: Record = serde_json::from_slice(field(secret, &name, KEY_RECORD)?)
        .map_err(|e| corrupt(&name, format!("record: {e}")))?;
    let selection = record
        .selection()
        .map_err(|e| corrupt(&name, format!("record: its services {e}")))?;
    if secret_name(&record.workload, &record.hadoop_user, &selection) != name {
        return Err(corrupt(&name, "its record names another workload".into()));
    }
    Ok((Listed { name, record }, selection))
}

pub fn from_secret(secret: &Secret) -> Result<Entry, StoreError> {
    let (Listed { name, record }, selection) = record_of(secret)?;
    let corrupt = |detail: String| corrupt(&name, detail);
    let field = |key: &str| field(secret, &name, key);
    let stored: Vec<StoredToken> =
        serde_json::from_slice(field(KEY_TOKENS)?).map_err(|e| corrupt(format!("tokens: {e}")))?;
    let set = TokenSet {
        tokens: stored
            .into_iter()
            .map(|t| IssuedToken::new(t.source, t.kind, t.service, t.url_string))
            .collect(),
    };
    let issued = record.serve(Zeroizing::new(field(KEY_FILE)?.to_vec()), set, selection);
    Ok(Entry {
        name,
        resource_version: secret.metadata.resource_version.clone(),
        record,
        issued,
    })
}

/// The Secret calls the ledger makes; a fake stands in for the API server in tests.
pub trait SecretApi: Send + Sync {
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Secret>, StoreError>>;
    fn list(&self) -> BoxFuture<'_, Result<Vec<Arc<Secret>>, StoreError>>;
    fn create<'a>(&'a self, secret: &'a Secret) -> BoxFuture<'a, Result<Secret, StoreError>>;
    /// Replaces the Secret if its resourceVersion still matches `secret`'s.
    fn replace<'a>(&'a self, secret: &'a Secret) -> BoxFuture<'a, Result<Secret, StoreError>>;
    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
}

pub(crate) fn name_of(secret: &Secret) -> &str {
    secret.metadata.name.as_deref().unwrap_or_default()
}

/// What is stored at a workload's Secret name.
enum Found {
    Absent,
    Ours(Box<Entry>),
    /// Unreadable, or a record of another workload or user: never served.
    Foreign {
        resource_version: Option<String>,
    },
}

/// Entries in one namespace, on top of a [`SecretApi`].
#[derive(Clone)]
pub struct Ledger {
    api: Arc<dyn SecretApi>,
    namespace: String,
    clock: Clock,
}

impl Ledger {
    pub fn new(api: Arc<dyn SecretApi>, namespace: String, clock: Clock) -> Ledger {
        Ledger {
            api,
            namespace,
            clock,
        }
    }

    /// Every readable entry; unreadable Secrets are reported and skipped, never deleted. The
    /// service itself reads `records` and the few entries it acts on.
    #[cfg(test)]
    pub async fn entries(&self) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        for secret in self.api.list().await? {
            match from_secret(&secret) {
                Ok(entry) => out.push(entry),
                Err(e) => tracing::error!(error = %e, "skipping a ledger Secret"),
            }
        }
        Ok(out)
    }

    /// Every entry's name and record, its tokens and file left unread: a pass decides on
    /// records and re-reads the few it acts on.
    pub async fn records(&self) -> Result<Vec<Listed>, StoreError> {
        let mut out = Vec::new();
        for secret in self.api.list().await? {
            match record_of(&secret) {
                Ok((listed, _)) => out.push(listed),
                Err(e) => tracing::error!(error = %e, "skipping a ledger Secret"),
            }
        }
        Ok(out)
    }

    /// The entry `listed` names as stored now (`None`: deleted, or no longer readable as ours).
    /// The list may come from a watch that trails this replica's own writes; an action is taken
    /// on this.
    pub async fn reread(&self, listed: &Listed) -> Result<Option<Entry>, StoreError> {
        let Some(secret) = self.api.get(&listed.name).await? else {
            return Ok(None);
        };
        match from_secret(&secret) {
            Ok(fresh) if fresh.record.workload == listed.record.workload => Ok(Some(fresh)),
            Ok(_) => Ok(None),
            Err(e) => {
                tracing::error!(error = %e, "skipping a ledger Secret");
                Ok(None)
            }
        }
    }

    /// Writes `record` and `issued` over `entry`'s Secret, if nobody changed it since it was read.
    pub async fn update(
        &self,
        entry: &Entry,
        record: &Record,
        issued: &Issued,
    ) -> Result<Entry, StoreError> {
        let mut secret = self.secret(record, issued)?;
        secret.metadata.resource_version = entry.resource_version.clone();
        from_secret(&self.api.replace(&secret).await?)
    }

    pub async fn remove(&self, entry: &Entry) -> Result<(), StoreError> {
        self.api.delete(&entry.name).await
    }

    fn secret(&self, record: &Record, issued: &Issued) -> Result<Secret, StoreError> {
        to_secret(&self.namespace, record, issued).map_err(|detail| StoreError::Corrupt {
            name: secret_name(&record.workload, &record.hadoop_user, &issued.selection),
            detail,
        })
    }

    /// The Secret at the name of (`workload`, `user`, `services`), and whether its record is
    /// for exactly that workload (uid, kind, name, …), user and choice of services.
    async fn find(
        &self,
        workload: &WorkloadKey,
        user: &str,
        services: &Selection,
    ) -> Result<Found, StoreError> {
        let name = secret_name(workload, user, services);
        let Some(secret) = self.api.get(&name).await? else {
            return Ok(Found::Absent);
        };
        let why = match from_secret(&secret) {
            Ok(entry)
                if entry.record.workload == *workload
                    && entry.record.hadoop_user == user
                    && entry.issued.selection == *services =>
            {
                return Ok(Found::Ours(Box::new(entry)));
            }
            Ok(entry) => format!(
                "its record is for {} as {}",
                entry.record.workload, entry.record.hadoop_user
            ),
            Err(e) => e.to_string(),
        };
        tracing::warn!(secret = %name, workload = %workload, user, reason = %why, "ledger Secret does not hold this workload's set: never served, replaced by a new set");
        Ok(Found::Foreign {
            resource_version: secret.metadata.resource_version.clone(),
        })
    }

    fn usable(&self, entry: &Entry) -> bool {
        entry.record.expires_at_ms > (self.clock)()
    }
}

impl Persist for Ledger {
    fn load<'a>(
        &'a self,
        workload: &'a WorkloadKey,
        user: &'a str,
        services: &'a Selection,
    ) -> BoxFuture<'a, Result<Option<Loaded>, StoreError>> {
        Box::pin(async move {
            Ok(match self.find(workload, user, services).await? {
                Found::Ours(e) if self.usable(&e) => Some(Loaded::Usable(e.issued)),
                Found::Ours(e) => Some(Loaded::Expired(e)),
                // Someone else's set, or garbage: a new set is obtained and saved over it.
                Found::Foreign { .. } | Found::Absent => None,
            })
        })
    }

    fn save<'a>(
        &'a self,
        workload: &'a WorkloadKey,
        issued: &'a Arc<Issued>,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        Box::pin(async move {
            let record = Record::new(workload, issued, (self.clock)());
            let secret = self.secret(&record, issued)?;
            match self.api.create(&secret).await {
                Ok(_) => return Ok(Saved::Ours),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
            // Someone stored a set first: theirs wins unless it is already dead, or not theirs.
            let existing = match self
                .find(workload, &issued.hadoop_user, &issued.selection)
                .await?
            {
                Found::Ours(existing) => existing,
                Found::Absent => {
                    self.api.create(&secret).await?;
                    return Ok(Saved::Ours);
                }
                Found::Foreign { resource_version } => {
                    // Its tokens are not this workload's to cancel: overwrite only.
                    let mut ours = secret;
                    ours.metadata.resource_version = resource_version;
                    self.api.replace(&ours).await?;
                    return Ok(Saved::Ours);
                }
            };
            if self.usable(&existing) {
                return Ok(Saved::Theirs(existing.issued));
            }
            self.update(&existing, &record, issued).await?;
            Ok(Saved::Replaced(existing.issued.set.clone()))
        })
    }

    fn renewed<'a>(
        &'a self,
        expired: &'a Entry,
        renewal: &'a Renewal,
    ) -> BoxFuture<'a, Result<Arc<Issued>, StoreError>> {
        Box::pin(async move {
            let record = expired.record.renewed(renewal, (self.clock)());
            let issued = record.serve(
                expired.issued.file.clone(),
                expired.issued.set.clone(),
                expired.issued.selection.clone(),
            );
            match self.update(expired, &record, &issued).await {
                Ok(stored) => Ok(stored.issued),
                // The reconciler or another replica acted first (renewed or replaced the set):
                // what it recorded, if it can be served.
                Err(StoreError::Conflict(name)) => {
                    match self
                        .find(&record.workload, &record.hadoop_user, &issued.selection)
                        .await?
                    {
                        Found::Ours(now) if self.usable(&now) => Ok(now.issued),
                        _ => Err(StoreError::Conflict(name)),
                    }
                }
                Err(e) => Err(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::fixtures::{FakeSecrets, url_string, workload};

    fn issued(seq: i32, expires: u64) -> Arc<Issued> {
        crate::fixtures::issued("alice", seq, expires)
    }

    async fn usable(l: &Ledger) -> Arc<Issued> {
        match l
            .load(&workload("web"), "alice", &Selection::All)
            .await
            .expect("load")
        {
            Some(Loaded::Usable(issued)) => issued,
            Some(Loaded::Expired(_)) => panic!("expired by its record"),
            None => panic!("no entry"),
        }
    }

    fn ledger(api: Arc<FakeSecrets>, now: Arc<AtomicU64>) -> Ledger {
        Ledger::new(
            api,
            "kube2hadoop".into(),
            Arc::new(move || now.load(Ordering::SeqCst)),
        )
    }

    #[test]
    fn names_are_stable_valid_and_distinct() {
        let a = secret_name(&workload("web"), "alice", &Selection::All);
        assert_eq!(a, secret_name(&workload("web"), "alice", &Selection::All));
        assert_ne!(a, secret_name(&workload("web"), "bob", &Selection::All));
        assert_ne!(a, secret_name(&workload("db"), "alice", &Selection::All));
        let hdfs = Selection::Only(["hdfs"].into());
        assert_ne!(a, secret_name(&workload("web"), "alice", &hdfs));
        // Every service is what sets were before workloads chose: their names must not move.
        assert_eq!(a, "k2h-3eb75bc23b630c0bbb859e49c765a72f", "{a}");
        assert_eq!(a.len(), 36);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }

    #[tokio::test]
    async fn sets_of_other_services_are_other_entries() {
        let api = Arc::new(FakeSecrets::default());
        let l = ledger(Arc::clone(&api), Arc::new(AtomicU64::new(1_000)));
        let all = issued(40, 5_000);
        let only = Arc::new(
            Issued::obtained(
                "alice",
                Some("alice".into()),
                Selection::Only(["hdfs"].into()),
                &crate::fixtures::token_set("alice", 41),
                crate::issued::Expiry::Assumed {
                    now_ms: 1_000,
                    interval_ms: 4_000,
                },
            )
            .expect("encodes"),
        );
        assert!(matches!(
            l.save(&workload("web"), &all).await,
            Ok(Saved::Ours)
        ));
        assert!(matches!(
            l.save(&workload("web"), &only).await,
            Ok(Saved::Ours)
        ));
        let Some(Loaded::Usable(back)) = l
            .load(&workload("web"), "alice", &only.selection)
            .await
            .expect("load")
        else {
            panic!("the hdfs-only set is stored");
        };
        assert_eq!(back.selection, only.selection);
        assert_eq!(back.tokens, only.tokens);
        assert_eq!(
            usable(&l).await.tokens,
            all.tokens,
            "the other set is untouched"
        );
    }

    #[tokio::test]
    async fn a_saved_set_loads_back_with_its_tokens_and_record() {
        let api = Arc::new(FakeSecrets::default());
        let now = Arc::new(AtomicU64::new(1_000));
        let l = ledger(Arc::clone(&api), now);
        let set = issued(40, 5_000);
        assert!(matches!(
            l.save(&workload("web"), &set).await,
            Ok(Saved::Ours)
        ));
        let back = usable(&l).await;
        assert_eq!(back.file.as_slice(), set.file.as_slice());
        assert_eq!(back.tokens, set.tokens);
        assert_eq!(
            back.set.tokens[0].url_string(),
            set.set.tokens[0].url_string()
        );
        let entries = l.entries().await.expect("entries");
        assert_eq!(entries.len(), 1);
        let r = &entries[0].record;
        assert_eq!(
            (r.issued_at_ms, r.expires_at_ms, r.max_date_ms()),
            (1_000, 5_000, Some(9_000_000))
        );
        let secret = api
            .objects
            .lock()
            .expect("lock")
            .values()
            .next()
            .cloned()
            .expect("secret");
        let labels = secret.metadata.labels.expect("labels");
        assert_eq!(
            labels.get(MANAGED_BY.0).map(String::as_str),
            Some(MANAGED_BY.1)
        );
        let record_text =
            String::from_utf8(secret.data.expect("data")[KEY_RECORD].0.clone()).expect("utf8");
        assert!(
            !record_text.contains("pw"),
            "no password in the public record"
        );
    }

    #[tokio::test]
    async fn the_first_replica_to_store_wins_and_a_dead_set_is_replaced() {
        let api = Arc::new(FakeSecrets::default());
        let now = Arc::new(AtomicU64::new(1_000));
        let l = ledger(Arc::clone(&api), Arc::clone(&now));
        l.save(&workload("web"), &issued(40, 5_000))
            .await
            .expect("first");
        match l
            .save(&workload("web"), &issued(41, 5_000))
            .await
            .expect("second")
        {
            Saved::Theirs(theirs) => assert_eq!(theirs.tokens[0].sequence_number, Some(40)),
            Saved::Ours | Saved::Replaced(_) => panic!("a second set must not replace a live one"),
        }
        now.store(6_000, Ordering::SeqCst);
        assert!(
            matches!(
                l.load(&workload("web"), "alice", &Selection::All)
                    .await
                    .expect("load"),
                Some(Loaded::Expired(_))
            ),
            "expired"
        );
        match l
            .save(&workload("web"), &issued(42, 9_000))
            .await
            .expect("replace")
        {
            Saved::Replaced(old) => assert_eq!(
                old.tokens[0].url_string(),
                url_string("alice", 40),
                "the dead set is handed back to be cancelled"
            ),
            _ => panic!("a dead set is replaced"),
        }
        assert_eq!(api.count(), 1);
        let back = usable(&l).await;
        assert_eq!(back.tokens[0].sequence_number, Some(42));
    }

    #[tokio::test]
    async fn a_record_of_another_workload_or_user_is_never_served_and_is_replaced() {
        let api = Arc::new(FakeSecrets::default());
        let l = ledger(Arc::clone(&api), Arc::new(AtomicU64::new(1_000)));
        let target = secret_name(&workload("web"), "alice", &Selection::All);
        let mut same_name_other_uid = workload("web");
        same_name_other_uid.uid = "uid-of-an-older-web".into();
        let mut bobs = issued(77, 5_000);
        Arc::get_mut(&mut bobs).expect("unshared").hadoop_user = "bob".into();
        let forgeries = [
            (workload("db"), issued(77, 5_000)),
            (same_name_other_uid, issued(77, 5_000)),
            (workload("web"), bobs),
        ];
        for (i, (w, set)) in forgeries.into_iter().enumerate() {
            let mut forged =
                to_secret("kube2hadoop", &Record::new(&w, &set, 1_000), &set).expect("secret");
            forged.metadata.name = Some(target.clone());
            api.objects
                .lock()
                .expect("lock")
                .insert(target.clone(), forged);
            assert!(
                l.load(&workload("web"), "alice", &Selection::All)
                    .await
                    .expect("load")
                    .is_none(),
                "forgery {i} was served"
            );
            assert!(matches!(
                l.save(&workload("web"), &issued(40 + i as i32, 5_000))
                    .await
                    .expect("save over it"),
                Saved::Ours
            ));
            let back = usable(&l).await;
            assert_eq!(back.tokens[0].sequence_number, Some(40 + i as i32));
            assert_eq!(back.hadoop_user, "alice");
        }
        // Garbage at the name is replaced the same way.
        let mut junk = Secret::default();
        junk.metadata.name = Some(target.clone());
        api.objects
            .lock()
            .expect("lock")
            .insert(target.clone(), junk);
        assert!(
            l.load(&workload("web"), "alice", &Selection::All)
                .await
                .expect("load")
                .is_none()
        );
        l.save(&workload("web"), &issued(50, 5_000))
            .await
            .expect("save");
        assert_eq!(usable(&l).await.tokens[0].sequence_number, Some(50));
        assert_eq!(api.count(), 1);
    }

    #[test]
    fn names_are_a_truncated_sha256_of_the_key() {
        // `printf 'team-a\napps/v1\nDeployment\nweb\nuid-web\nalice' | sha256sum`, 16 bytes.
        assert_eq!(
            secret_name(&workload("web"), "alice", &Selection::All),
            "k2h-3eb75bc23b630c0bbb859e49c765a72f"
        );
    }

    #[tokio::test]
    async fn a_stale_update_is_a_conflict() {
        let api = Arc::new(FakeSecrets::default());
        let l = ledger(Arc::clone(&api), Arc::new(AtomicU64::new(0)));
        l.save(&workload("web"), &issued(40, 5_000))
            .await
            .expect("save");
        let entry = l.entries().await.expect("entries").remove(0);
        let mut record = entry.record.clone();
        record.renewals = 1;
        let newer = l
            .update(&entry, &record, &entry.issued)
            .await
            .expect("update");
        assert_eq!(newer.record.renewals, 1);
        assert!(matches!(
            l.update(&entry, &record, &entry.issued).await,
            Err(StoreError::Conflict(_))
        ));
        l.remove(&newer).await.expect("remove");
        assert_eq!(api.count(), 0);
    }

    #[tokio::test]
    async fn a_renewal_recorded_after_another_replica_acted_serves_only_a_usable_set() {
        let api = Arc::new(FakeSecrets::default());
        let now = Arc::new(AtomicU64::new(1_000));
        let l = ledger(Arc::clone(&api), Arc::clone(&now));
        l.save(&workload("web"), &issued(40, 5_000))
            .await
            .expect("save");
        now.store(6_000, Ordering::SeqCst);
        let Some(Loaded::Expired(expired)) = l
            .load(&workload("web"), "alice", &Selection::All)
            .await
            .expect("load")
        else {
            panic!("expired by its record");
        };
        let renewal = Renewal {
            expires_at_ms: 26_000,
            per_token: vec![("hdfs:ns1".into(), 26_000)],
        };
        // Two replicas renewed the same set; the second records after the first.
        l.renewed(&expired, &renewal).await.expect("first");
        let served = l.renewed(&expired, &renewal).await.expect("second");
        assert_eq!(
            (served.tokens[0].sequence_number, served.expires_at_ms),
            (Some(40), 26_000)
        );
        let entry = l.entries().await.expect("entries").remove(0);
        assert_eq!(
            (entry.record.renewals, entry.record.window_start_ms),
            (1, 6_000)
        );
        // Whoever wrote first left it expired (a failure recorded): nothing to serve, retry.
        now.store(30_000, Ordering::SeqCst);
        let Some(Loaded::Expired(expired)) = l
            .load(&workload("web"), "alice", &Selection::All)
            .await
            .expect("load")
        else {
            panic!("expired by its record");
        };
        let mut failed = expired.record.clone();
        failed.failures = 1;
        l.update(&expired, &failed, &expired.issued)
            .await
            .expect("other write");
        assert!(matches!(
            l.renewed(&expired, &renewal).await,
            Err(StoreError::Conflict(_))
        ));
    }
}
