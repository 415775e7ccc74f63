//! Reloadable files: poll by content hash, parse, swap; a bad new version keeps the old value.
//!
//! Polling (not inotify) because Kubernetes updates mounted Secrets and ConfigMaps by swapping a
//! `..data` symlink, which inotify watches on the file itself miss; reading by path always
//! follows the current link.
use crate::error::Error;
use arc_swap::ArcSwap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::hash::{DefaultHasher, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

type ParseFn<T> = dyn Fn(&[Vec<u8>]) -> Result<T, Error> + Send + Sync;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    target: String,
    result: String,
}

/// `k2h_reloads_total{target, result="success"|"failure"}`.
#[derive(Clone, Debug, Default)]
pub struct ReloadCounters {
    family: Family<ReloadLabels, Counter>,
}

impl ReloadCounters {
    pub fn register(registry: &mut Registry) -> Self {
        let counters = ReloadCounters::default();
        registry.register(
            "k2h_reloads",
            "Reloads of watched files (TLS pair, policy) by outcome",
            counters.family.clone(),
        );
        counters
    }

    fn inc(&self, target: &str, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.family
            .get_or_create(&ReloadLabels {
                target: target.into(),
                result: result.into(),
            })
            .inc();
    }

    /// Current count, for tests and diagnostics.
    pub fn get(&self, target: &str, ok: bool) -> u64 {
        let result = if ok { "success" } else { "failure" };
        self.family
            .get_or_create(&ReloadLabels {
                target: target.into(),
                result: result.into(),
            })
            .get()
    }
}

/// One or more files parsed together into a `T` (e.g. a certificate and its key).
pub struct FileWatcher<T> {
    name: &'static str,
    paths: Vec<PathBuf>,
    parse: Box<ParseFn<T>>,
    current: Arc<ArcSwap<T>>,
    last_seen: u64,
    counters: ReloadCounters,
}

impl<T: Send + Sync + 'static> FileWatcher<T> {
    /// Reads and parses the files now; the first version must be good.
    pub fn load<F>(name: &'static str, paths: Vec<PathBuf>, parse: F) -> Result<Self, Error>
    where
        F: Fn(&[Vec<u8>]) -> Result<T, Error> + Send + Sync + 'static,
    {
        let (files, hash) = read_all(name, &paths)?;
        let value = parse(&files)?;
        Ok(FileWatcher {
            name,
            paths,
            parse: Box::new(parse),
            current: Arc::new(ArcSwap::from_pointee(value)),
            last_seen: hash,
            counters: ReloadCounters::default(),
        })
    }

    /// Count reloads in a registered family instead of a private one.
    pub fn with_counters(mut self, counters: ReloadCounters) -> Self {
        self.counters = counters;
        self
    }

    /// The shared value; readers `load()` it per use.
    pub fn current(&self) -> Arc<ArcSwap<T>> {
        self.current.clone()
    }

    /// Reads the files once. `Ok(true)` when a changed version was parsed and swapped in;
    /// `Err` when the files changed but cannot be read or parsed (the old value stays).
    /// A failed version is not retried until the content changes again.
    pub fn check(&mut self) -> Result<bool, Error> {
        let (files, hash) = match read_all(self.name, &self.paths) {
            Ok(read) => read,
            Err(e) => {
                self.counters.inc(self.name, false);
                return Err(e);
            }
        };
        if hash == self.last_seen {
            return Ok(false);
        }
        self.last_seen = hash;
        match (self.parse)(&files) {
            Ok(value) => {
                self.current.store(Arc::new(value));
                self.counters.inc(self.name, true);
                Ok(true)
            }
            Err(e) => {
                self.counters.inc(self.name, false);
                Err(e)
            }
        }
    }

    /// Polls every `interval` until the task is aborted or the runtime stops.
    pub fn spawn(mut self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // the first tick fires at once; the files were just read
            loop {
                tick.tick().await;
                // A few small files every few seconds: a blocking read costs less than a
                // thread hop and keeps the watcher's state in this task.
                match self.check() {
                    Ok(true) => tracing::info!(target = self.name, "reloaded watched files"),
                    Ok(false) => {}
                    Err(e) => tracing::error!(
                        target = self.name,
                        error = %e,
                        "changed files are not usable; still serving the previous version"
                    ),
                }
            }
        })
    }
}

fn read_all(name: &'static str, paths: &[PathBuf]) -> Result<(Vec<Vec<u8>>, u64), Error> {
    let mut hasher = DefaultHasher::new();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let bytes = std::fs::read(path).map_err(|source| Error::ReadFile {
            what: name,
            path: path.clone(),
            source,
        })?;
        hasher.write_usize(bytes.len());
        hasher.write(&bytes);
        files.push(bytes);
    }
    Ok((files, hasher.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::tests::self_signed;
    use crate::tls::watch_cert_files;

    fn parse_number(files: &[Vec<u8>]) -> Result<u32, Error> {
        let text = String::from_utf8_lossy(&files[0]);
        text.trim().parse().map_err(|e| Error::Parse {
            path: "n".into(),
            reason: format!("{e}"),
        })
    }

    #[test]
    fn generic_watcher_swaps_and_keeps_old_on_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "1").unwrap();
        let mut w = FileWatcher::load("n", vec![path.clone()], parse_number).unwrap();
        let current = w.current();
        assert!(!w.check().unwrap(), "unchanged file is not a reload");

        std::fs::write(&path, "2").unwrap();
        assert!(w.check().unwrap());
        assert_eq!(**current.load(), 2);

        std::fs::write(&path, "not a number").unwrap();
        assert!(w.check().is_err());
        assert_eq!(**current.load(), 2, "bad file keeps the old value");
        assert!(!w.check().unwrap(), "the same bad content is not retried");

        std::fs::remove_file(&path).unwrap();
        assert!(matches!(w.check(), Err(Error::ReadFile { .. })));
        assert_eq!(**current.load(), 2);

        std::fs::write(&path, "3").unwrap();
        assert!(w.check().unwrap());
        assert_eq!(**current.load(), 3);
        assert_eq!(w.counters.get("n", true), 2);
        assert_eq!(w.counters.get("n", false), 2);
    }

    #[test]
    fn first_load_must_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "x").unwrap();
        assert!(FileWatcher::load("n", vec![path], parse_number).is_err());
    }

    /// Kubernetes updates a mounted Secret by pointing the `..data` symlink at a new directory.
    #[cfg(unix)]
    #[test]
    fn cert_reload_follows_symlink_swap_and_keeps_old_on_bad_pair() {
        let dir = tempfile::tempdir().unwrap();
        let write_pair = |sub: &str, name: &str| {
            let d = dir.path().join(sub);
            std::fs::create_dir(&d).unwrap();
            let (cert, key) = self_signed(name);
            std::fs::write(d.join("tls.crt"), cert).unwrap();
            std::fs::write(d.join("tls.key"), key).unwrap();
        };
        write_pair("v1", "one.example");
        write_pair("v2", "two.example");
        let data = dir.path().join("..data");
        std::os::unix::fs::symlink("v1", &data).unwrap();
        for f in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{f}"), dir.path().join(f)).unwrap();
        }
        let (resolver, mut w) =
            watch_cert_files(dir.path().join("tls.crt"), dir.path().join("tls.key")).unwrap();
        let first = resolver.current_cert().cert[0].clone();

        let tmp = dir.path().join("..data_tmp");
        std::os::unix::fs::symlink("v2", &tmp).unwrap();
        std::fs::rename(&tmp, &data).unwrap();
        assert!(w.check().unwrap());
        let second = resolver.current_cert().cert[0].clone();
        assert_ne!(first, second, "the new certificate is served");

        // A certificate without its key (half-finished rotation): keep serving the second one.
        let (other_cert, _) = self_signed("three.example");
        std::fs::remove_file(dir.path().join("v2/tls.crt")).unwrap();
        std::fs::write(dir.path().join("v2/tls.crt"), other_cert).unwrap();
        assert!(matches!(w.check(), Err(Error::Pair { .. })));
        assert_eq!(resolver.current_cert().cert[0], second);
    }

    #[tokio::test]
    async fn spawned_watcher_picks_up_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "1").unwrap();
        let w = FileWatcher::load("n", vec![path.clone()], parse_number).unwrap();
        let current = w.current();
        let task = w.spawn(Duration::from_millis(20));
        std::fs::write(&path, "7").unwrap();
        // Bounded wait for the poller; not a timing assertion.
        let mut seen = false;
        for _ in 0..250 {
            if **current.load() == 7 {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task.abort();
        assert!(seen, "the watcher did not swap in the new value within 5 s");
    }
}
