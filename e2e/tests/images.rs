//! The images `make images` builds without Docker (e2e/scripts/images.sh): built twice, they
//! have the same digests; every blob is what its digest says; each config runs the binary as
//! uid 65532 with the shipped entrypoint; iddecorator and init-fetcher are one static binary
//! each; token-service's layer holds every library its binary loads, shown by running it from
//! the unpacked layer alone (chroot, as uid 65532). No cluster needed.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;

use e2e::{Error, ensure};
use serde_json::Value;

const IMAGES: [(&str, &str, Option<&str>); 3] = [
    ("iddecorator", "/iddecorator", None),
    ("init-fetcher", "/init-fetcher", Some("fetch")),
    ("token-service", "/usr/local/bin/token-service", None),
];
const TAG: &str = "e2e";
const NONROOT: &str = "65532:65532";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check(what: impl Into<String>) -> Error {
    Error::Check(what.into())
}

/// Runs `cmd`, failing with its output unless it succeeds; returns stdout.
fn run(cmd: &mut Command, what: &str) -> Result<String, Error> {
    let out = cmd
        .output()
        .map_err(|e| check(format!("{what}: cannot start: {e}")))?;
    ensure(out.status.success(), || {
        format!(
            "{what}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Two builds into directories of their own, with the same inputs.
struct Builds {
    _dir: tempfile::TempDir,
    first: PathBuf,
    second: PathBuf,
}

static BUILDS: LazyLock<Result<Builds, String>> = LazyLock::new(|| {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (first, second) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&first, &second] {
        run(
            Command::new(root().join("e2e/scripts/images.sh"))
                .env("K2H_IMAGES_DIR", out)
                .env("IMAGE_TAG", TAG),
            "e2e/scripts/images.sh",
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(Builds {
        _dir: dir,
        first,
        second,
    })
});

fn builds() -> Result<&'static Builds, Error> {
    BUILDS.as_ref().map_err(|e| check(e.clone()))
}

/// One unpacked archive: its layout directory.
struct Archive {
    dir: tempfile::TempDir,
}

impl Archive {
    fn open(path: &Path) -> Result<Archive, Error> {
        let dir = tempfile::tempdir().map_err(|e| check(e.to_string()))?;
        run(
            Command::new("tar")
                .arg("-xf")
                .arg(path)
                .arg("-C")
                .arg(dir.path()),
            "unpacking the archive",
        )?;
        Ok(Archive { dir })
    }

    fn json(&self, rel: &str) -> Result<Value, Error> {
        let path = self.dir.path().join(rel);
        let bytes = std::fs::read(&path).map_err(|e| check(format!("{rel}: {e}")))?;
        serde_json::from_slice(&bytes).map_err(|e| check(format!("{rel}: {e}")))
    }

    /// The blob a descriptor names, checked against its digest and size.
    fn blob(&self, descriptor: &Value) -> Result<PathBuf, Error> {
        let digest = descriptor["digest"].as_str().unwrap_or_default();
        let hex = digest
            .strip_prefix("sha256:")
            .ok_or_else(|| check(format!("digest {digest:?} is not sha256")))?;
        let path = self.dir.path().join("blobs/sha256").join(hex);
        let bytes = std::fs::read(&path).map_err(|e| check(format!("blob {digest}: {e}")))?;
        let actual = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let actual: String = actual.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        ensure(actual == hex, || {
            format!("blob {digest} has digest {actual}")
        })?;
        ensure(
            descriptor["size"].as_u64() == Some(bytes.len() as u64),
            || {
                format!(
                    "blob {digest}: size {} != {}",
                    bytes.len(),
                    descriptor["size"]
                )
            },
        )?;
        Ok(path)
    }
}

#[test]
fn images_are_reproducible_and_run_their_binary_as_nonroot() -> Result<(), Error> {
    let builds = builds()?;
    let digests = |dir: &Path| std::fs::read_to_string(dir.join("digests.txt"));
    let (a, b) = (
        digests(&builds.first).map_err(|e| check(e.to_string()))?,
        digests(&builds.second).map_err(|e| check(e.to_string()))?,
    );
    ensure(a == b && a.lines().count() == 3, || {
        format!("two builds differ:\n{a}\n{b}")
    })?;
    for (name, entrypoint, cmd) in IMAGES {
        let archive = Archive::open(&builds.first.join(format!("kube2hadoop-{name}.oci.tar")))?;
        let index = archive.json("index.json")?;
        let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
        ensure(manifests.len() == 1, || format!("{name}: index {index}"))?;
        let annotations = &manifests[0]["annotations"];
        ensure(
            annotations["io.containerd.image.name"]
                == format!("docker.io/kube2hadoop/{name}:{TAG}")
                && annotations["org.opencontainers.image.ref.name"] == TAG,
            || format!("{name}: image names {annotations}"),
        )?;
        ensure(
            a.contains(manifests[0]["digest"].as_str().unwrap_or("none")),
            || {
                format!(
                    "{name}: digests.txt does not list {}",
                    manifests[0]["digest"]
                )
            },
        )?;
        let manifest: Value = read_json(&archive.blob(&manifests[0])?)?;
        let config: Value = read_json(&archive.blob(&manifest["config"])?)?;
        let c = &config["config"];
        ensure(
            c["User"] == NONROOT
                && c["Entrypoint"] == serde_json::json!([entrypoint])
                && c["Cmd"] == cmd.map_or(Value::Null, |c| serde_json::json!([c]))
                && config["os"] == "linux"
                && config["architecture"] == "amd64",
            || format!("{name}: config {c}"),
        )?;
        let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        ensure(layers.len() == 1, || {
            format!("{name}: {} layers", layers.len())
        })?;
        let rootfs = tempfile::tempdir().map_err(|e| check(e.to_string()))?;
        run(
            Command::new("tar")
                .arg("-xzf")
                .arg(archive.blob(&layers[0])?)
                .arg("-C")
                .arg(rootfs.path()),
            "unpacking the layer",
        )?;
        let binary = rootfs.path().join(entrypoint.trim_start_matches('/'));
        ensure(binary.is_file(), || format!("{name}: no {entrypoint}"))?;
        if name == "token-service" {
            // Only the layer's own files: its loader and libraries, as uid 65532.
            run(
                Command::new("chroot")
                    .arg(format!("--userspec={NONROOT}"))
                    .arg(rootfs.path())
                    .args([entrypoint, "--help"]),
                "token-service --help inside its image's root",
            )?;
        } else {
            let files = run(
                Command::new("find")
                    .arg(rootfs.path())
                    .args(["-mindepth", "1"]),
                "listing the layer",
            )?;
            ensure(files.lines().count() == 1, || {
                format!("{name}: the layer holds more than the binary:\n{files}")
            })?;
            let headers = run(
                Command::new("readelf")
                    .arg("--program-headers")
                    .arg(&binary),
                "readelf",
            )?;
            ensure(!headers.contains("INTERP"), || {
                format!("{name} is not static (it names a program interpreter)")
            })?;
            run(Command::new(&binary).arg("--help"), "the binary's --help")?;
        }
    }
    Ok(())
}

fn read_json(path: &Path) -> Result<Value, Error> {
    let bytes = std::fs::read(path).map_err(|e| check(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| check(format!("{}: {e}", path.display())))
}
