//! The Kerberized HDFS bed (`e2e/hadoop/`, started by `e2e/scripts/hadoop-up.sh`): its
//! description (`cluster.json`), its scripts and the stock Hadoop client.
//!
//! These helpers panic with the script's own words when the bed cannot be had: a test that needs
//! HDFS must fail, not skip, and the message says what to install or start.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;

/// The flags of the shared bed; `install.sh` starts it with the same ones.
pub const SHARED_FLAGS: &[&str] = &["--kms", "--yarn", "--hive"];

/// What `hadoop-up.sh` prints the path of (fields the tests use).
#[derive(Debug, Clone, Deserialize)]
pub struct Cluster {
    /// `127.0.0.1:<port>` of the KDC (TCP).
    #[serde(default)]
    pub kdc: String,
    pub service_principal: String,
    pub service_keytab: PathBuf,
    pub krb5_conf: PathBuf,
    pub nameservices: Vec<NameService>,
    pub hadoop_conf_dir: PathBuf,
    pub audit_log: PathBuf,
    pub renew_interval_ms: i64,
    #[serde(default)]
    pub kms: Vec<KmsJson>,
    /// The Kerberized ResourceManager (`--yarn`), or `None`.
    #[serde(default)]
    pub yarn: Option<YarnJson>,
    /// The HDFS Router in front of both nameservices (`--rbf`), and its clients' config.
    #[serde(default)]
    pub router: Option<RouterJson>,
    #[serde(default)]
    pub router_conf_dir: Option<PathBuf>,
    /// The Kerberized Hive metastore (`--hive`), or `None`.
    #[serde(default)]
    pub hive: Option<HiveJson>,
    /// The harness's fault-injection port (`hadoop-ctl.sh`); absent on beds from older builds.
    #[serde(default)]
    pub control: Option<String>,
    /// With the bed's real node (`--pod-gateway`): the client config for pods, the NameNode's
    /// RPC address as they reach it, and the DataNode's name their hostAliases must map.
    #[serde(default)]
    pub pod_hadoop_conf_dir: Option<PathBuf>,
    #[serde(default)]
    pub pod_namenode_rpc: Option<String>,
    #[serde(default)]
    pub pod_datanode_hostname: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NameService {
    pub name: Option<String>,
    pub namenodes: Vec<NameNodeJson>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NameNodeJson {
    pub rpc: String,
    pub http: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KmsJson {
    pub uri: String,
    pub http: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct YarnJson {
    pub resourcemanagers: Vec<ResourceManagerJson>,
    /// What a YARN client selects the RM token by (`ClientRMProxy`).
    pub token_service: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HiveJson {
    /// `thrift://localhost:<port>`
    pub uri: String,
    /// `hive/localhost@EXAMPLE.COM`
    pub principal: String,
    /// The clients' `metastore.token.signature`, the service our token must carry.
    pub token_signature: String,
    /// One line per call with the caller's ugi.
    pub audit_log: PathBuf,
}

impl HiveJson {
    /// token-service's `hive:` entry for this metastore.
    pub fn service_config(&self) -> serde_json::Value {
        serde_json::json!([{"name": "warehouse", "metastores": [self.uri],
            "principal": self.principal.replace("localhost", "_HOST"),
            "tokenSignature": self.token_signature}])
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct RouterJson {
    pub nameservice: String,
    pub rpc: String,
    pub http: String,
    /// What a client of `hdfs://<nameservice>` selects the router's token by (`ha-hdfs:rbf`).
    pub token_service: String,
    /// A file of alice's in each subcluster, as the router names it (`/ns1/user/alice/...`).
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ResourceManagerJson {
    pub rpc: String,
    pub http: String,
}

pub fn e2e_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test bed's state dir: `K2H_E2E_STATE_DIR` (a private bed, set by its env file), else
/// `e2e/.state`. Private Hadoop beds of the tests go below it, so parallel runs never share one.
pub fn state_dir() -> PathBuf {
    std::env::var_os("K2H_E2E_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| e2e_dir().join(".state"))
}

/// A finished process's exit status and output, for failure messages.
pub fn show(out: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a bed script (against the Hadoop state directory `state` when given, else the shared
/// one) and returns its stdout; a failure ends the test with the script's words.
pub fn script(name: &str, args: &[&str], state: Option<&Path>) -> String {
    let path = e2e_dir().join("scripts").join(name);
    let mut cmd = Command::new(&path);
    cmd.args(args);
    if let Some(state) = state {
        cmd.env("K2H_HADOOP_STATE", state);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed (e2e/scripts/install-deps.sh installs what it needs):\n{}",
        path.display(),
        show(&out)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Cluster {
    /// The shared bed with KMS and YARN, started when not running. Every test asks with the
    /// same flags ([`SHARED_FLAGS`]), so a running bed is reused rather than restarted.
    pub fn shared() -> Cluster {
        Cluster::read(Path::new(&script("hadoop-up.sh", SHARED_FLAGS, None)))
    }

    /// A bed of its own in `state`, with `args` for `hadoop-up.sh`; stop it with
    /// `hadoop-down.sh` (see [`stop`]).
    pub fn private(state: &Path, args: &[&str]) -> Cluster {
        Cluster::read(Path::new(&script("hadoop-up.sh", args, Some(state))))
    }

    pub fn read(path: &Path) -> Cluster {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!(
                "cannot read the Hadoop bed description {}: {e}; start it with \
                 e2e/scripts/hadoop-up.sh",
                path.display()
            )
        });
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not a cluster.json: {e}", path.display()))
    }

    /// The NameNode audit log from byte `offset` on.
    pub fn audit_since(&self, offset: usize) -> String {
        let text = std::fs::read(&self.audit_log).unwrap_or_default();
        String::from_utf8_lossy(&text[offset.min(text.len())..]).into_owned()
    }

    /// The audit log's current size, to read only what a test caused.
    pub fn audit_size(&self) -> usize {
        std::fs::metadata(&self.audit_log)
            .map(|m| m.len() as usize)
            .unwrap_or(0)
    }

    /// Runs the stock client (`hadoop-client.sh args…`) with only the tokens in `token_file`:
    /// the script empties the ccache and no keytab is offered. `state` as for [`script`].
    pub fn client(&self, token_file: &Path, args: &[&str], state: Option<&Path>) -> Output {
        self.client_of(&self.hadoop_conf_dir, token_file, args, state)
    }

    /// [`Cluster::client`] with another client configuration (the router's, say).
    pub fn client_of(
        &self,
        conf_dir: &Path,
        token_file: &Path,
        args: &[&str],
        state: Option<&Path>,
    ) -> Output {
        let script = e2e_dir().join("scripts/hadoop-client.sh");
        let mut cmd = Command::new(&script);
        cmd.args(args)
            .env("HADOOP_TOKEN_FILE_LOCATION", token_file)
            .env("HADOOP_CONF_DIR", conf_dir)
            .env("KRB5_CONFIG", &self.krb5_conf)
            .env_remove("KRB5_CLIENT_KTNAME");
        if let Some(state) = state {
            cmd.env("K2H_HADOOP_STATE", state);
        }
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()))
    }

    /// Runs the stock Hive metastore client (`hive-client.sh args…`, the bed needs `--hive`)
    /// with only the tokens in `token_file`. `state` as for [`script`].
    pub fn hive_client(&self, token_file: &Path, args: &[&str], state: Option<&Path>) -> Output {
        let script = e2e_dir().join("scripts/hive-client.sh");
        let mut cmd = Command::new(&script);
        cmd.args(args)
            .env("HADOOP_TOKEN_FILE_LOCATION", token_file)
            .env_remove("KRB5_CLIENT_KTNAME");
        if let Some(state) = state {
            cmd.env("K2H_HADOOP_STATE", state);
        }
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()))
    }
}

/// Stops NameNode `index` of the bed in `state` for real (`hadoop-ctl.sh nn-stop`): its RPC
/// and HTTP ports refuse connections until [`start_namenode`]. Blocking.
pub fn stop_namenode(state: &Path, index: usize) {
    script(
        "hadoop-ctl.sh",
        &["nn-stop", &index.to_string()],
        Some(state),
    );
}

/// Starts NameNode `index` again on the same ports; returns once it has left safe mode. Blocking
/// (a few seconds: it reloads its edit log and waits for the DataNode).
pub fn start_namenode(state: &Path, index: usize) {
    script(
        "hadoop-ctl.sh",
        &["nn-start", &index.to_string()],
        Some(state),
    );
}

/// A copy of the bed's krb5.conf in `dir` that sends clients to `kdc` (e.g. a fault proxy in
/// front of the real KDC; TCP only, as the original) and asks for tickets of `ticket_lifetime`
/// (krb5 duration, e.g. `30s`), so a test can see a ticket run out. Returns its path.
pub fn krb5_conf_via(cluster: &Cluster, kdc: &str, ticket_lifetime: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(&cluster.krb5_conf).unwrap_or_else(|e| {
        panic!("cannot read {}: {e}", cluster.krb5_conf.display());
    });
    assert!(
        !cluster.kdc.is_empty() && text.contains(&format!("kdc = {}", cluster.kdc)),
        "{} does not name the KDC {:?} of cluster.json",
        cluster.krb5_conf.display(),
        cluster.kdc
    );
    let text = text
        .lines()
        .map(|l| {
            if l.trim() == format!("kdc = {}", cluster.kdc) {
                format!("        kdc = {kdc}")
            } else if l.trim_start().starts_with("ticket_lifetime") {
                format!("    ticket_lifetime = {ticket_lifetime}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.join("krb5.conf");
    std::fs::write(&path, text + "\n").expect("write krb5.conf");
    path
}

/// Stops the bed in `state` (best effort: cleanup must not hide the test's result).
pub fn stop(state: &Path) {
    let _ = Command::new(e2e_dir().join("scripts/hadoop-down.sh"))
        .env("K2H_HADOOP_STATE", state)
        .output();
}
