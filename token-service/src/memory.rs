//! Giving freed memory back. A burst (hundreds of TLS handshakes at once, a relist of every
//! pod) leaves the heap fragmented: glibc's malloc keeps those pages in its per-thread arenas,
//! and even with a `malloc_trim` every few seconds the resident size stayed about 20 MiB above
//! the live data after a 2,000-connection burst (bench/README.md). A memory limit sized for the
//! live data is then hit after the first storm. jemalloc (the default, feature `jemalloc`)
//! purges dirty pages from background threads after a short decay; without it, glibc's arenas
//! are trimmed periodically.

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How often glibc's arenas are trimmed when glibc's malloc is the allocator.
#[cfg(not(feature = "jemalloc"))]
pub const TRIM_PERIOD: std::time::Duration = std::time::Duration::from_secs(10);

/// Which allocator the binary runs with, for the startup log.
pub const ALLOCATOR_NAME: &str = if cfg!(feature = "jemalloc") {
    "jemalloc"
} else {
    "system"
};

/// Starts the trimming thread (glibc's malloc only; jemalloc purges by itself).
pub fn spawn_trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc")))]
    {
        let started = std::thread::Builder::new()
            .name("malloc-trim".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(TRIM_PERIOD);
                    // SAFETY: malloc_trim takes no pointers and only releases free memory;
                    // glibc locks each arena while it walks it.
                    #[allow(unsafe_code)]
                    unsafe {
                        libc::malloc_trim(0);
                    }
                }
            });
        if let Err(e) = started {
            tracing::warn!(error = %e, "cannot start the memory trimming thread; memory freed after bursts stays reserved");
        }
    }
}

/// Registers `process_resident_memory_bytes` and, with jemalloc,
/// `kube2hadoop_heap_allocated_bytes` and `kube2hadoop_heap_resident_bytes`: live data against
/// what stays resident, so a high RSS reads as data or as fragmentation at a glance.
pub fn register(registry: &mut prometheus_client::registry::Registry) {
    registry.register_collector(Box::new(stats::MemoryStats));
}

mod stats {
    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
    use prometheus_client::metrics::MetricType;
    use prometheus_client::metrics::gauge::ConstGauge;

    #[derive(Debug)]
    pub struct MemoryStats;

    impl Collector for MemoryStats {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            let mut gauges = vec![(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                resident_bytes(),
            )];
            gauges.extend(heap());
            for (name, help, value) in gauges {
                let Some(value) = value else { continue };
                let family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(value).encode(family)?;
            }
            Ok(())
        }
    }

    type Gauge = (&'static str, &'static str, Option<i64>);

    /// VmRSS from /proc/self/status (Linux; absent elsewhere).
    fn resident_bytes() -> Option<i64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        vm_rss(&status)
    }

    pub(super) fn vm_rss(status: &str) -> Option<i64> {
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
        kib.checked_mul(1024)
    }

    #[cfg(feature = "jemalloc")]
    fn heap() -> Vec<Gauge> {
        use tikv_jemalloc_ctl::{epoch, stats};
        // jemalloc's statistics are a snapshot taken when the epoch advances.
        if epoch::advance().is_err() {
            return Vec::new();
        }
        let read =
            |r: Result<usize, tikv_jemalloc_ctl::Error>| r.ok().and_then(|v| i64::try_from(v).ok());
        vec![
            (
                "kube2hadoop_heap_allocated_bytes",
                "Bytes the service has allocated and not freed (its live data)",
                read(stats::allocated::read()),
            ),
            (
                "kube2hadoop_heap_resident_bytes",
                "Bytes in pages the allocator keeps resident: live data, its metadata, and freed pages not yet returned",
                read(stats::resident::read()),
            ),
        ]
    }

    #[cfg(not(feature = "jemalloc"))]
    fn heap() -> Vec<Gauge> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\ttoken-service\nVmHWM:\t  9000 kB\nVmRSS:\t  8192 kB\n";
        assert_eq!(stats::vm_rss(status), Some(8192 * 1024));
        assert_eq!(stats::vm_rss("VmRSS: lots kB"), None);
        assert_eq!(stats::vm_rss(""), None);
    }

    #[test]
    fn the_gauges_are_exported() {
        let mut registry = prometheus_client::registry::Registry::default();
        register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap_or_default();
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        if cfg!(feature = "jemalloc") {
            assert!(text.contains("kube2hadoop_heap_allocated_bytes "), "{text}");
        }
    }
}
