//! Runs the `init-fetcher` binary on credentials files written with the `hadoop-token` library.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hadoop_token::identifier::KMS_DELEGATION_TOKEN;
use hadoop_token::{Credentials, Format, Secret};

mod common;
use common::stderr;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_init-fetcher"))
        .args(args)
        .output()
        .expect("the init-fetcher binary built by cargo must run")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Two tokens of alice's (HDFS and KMS) and a secret key.
fn credentials() -> Credentials {
    let mut c = common::credentials(42);
    let kms = "kms://http@kms:9600/kms";
    c.add_token(kms, common::token(KMS_DELEGATION_TOKEN, kms, 42));
    c.add_secret_key("app.key", Secret::from(b"SECRETKEYBYTES".as_slice()));
    c
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write test file");
    path
}

#[test]
fn prints_both_formats_as_text() {
    let dir = tempfile::tempdir().expect("temp dir");
    for format in [Format::Writable, Format::Protobuf] {
        let path = write(dir.path(), "creds", &credentials().encode(format));
        let out = run(&["print", path.to_str().expect("utf-8 temp path")]);
        assert!(out.status.success(), "stderr: {}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains(&format!("(format {}", format as u8)),
            "{text}"
        );
        assert!(text.contains("Tokens: 2"), "{text}");
        assert!(
            text.contains("  kind:            HDFS_DELEGATION_TOKEN\n"),
            "{text}"
        );
        assert!(text.contains("  kind:            kms-dt\n"), "{text}");
        assert!(text.contains("  owner:           alice\n"), "{text}");
        assert!(
            text.contains("  real user:       hdfs/nn@EXAMPLE.COM\n"),
            "{text}"
        );
        assert!(
            text.contains("  max date:        2025-12-02T12:00:00.000Z\n"),
            "{text}"
        );
        assert!(text.contains("  sequence number: 42\n"), "{text}");
        assert!(text.contains("Secret keys: 1\n  app.key\n"), "{text}");
        assert!(!text.contains("TOPSECRET") && !text.contains("SECRETKEYBYTES"));
    }
}

#[test]
fn prints_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(dir.path(), "creds", &credentials().encode(Format::Protobuf));
    let out = run(&["print", "--json", path.to_str().expect("utf-8 temp path")]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("valid JSON");
    assert_eq!(json["format"], 1);
    assert_eq!(json["tokens"][0]["alias"], "ha-hdfs:ns1");
    assert_eq!(json["tokens"][0]["identifier"]["renewer"], "yarn");
    assert_eq!(
        json["tokens"][0]["identifier"]["issue_date_ms"],
        1_764_072_000_123i64
    );
    assert_eq!(json["tokens"][1]["kind"], "kms-dt");
    assert_eq!(json["secret_keys"], serde_json::json!(["app.key"]));
    assert!(!stdout(&out).contains("TOPSECRET"));
}

#[test]
fn bad_file_names_path_and_offset() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = credentials().encode(Format::Writable);
    let path = write(dir.path(), "truncated", &bytes[..20]);
    let out = run(&["print", path.to_str().expect("utf-8 temp path")]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&*path.to_string_lossy()), "{err}");
    assert!(err.contains("at byte offset"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let path = write(dir.path(), "garbage", b"not a token file");
    let out = run(&["print", path.to_str().expect("utf-8 temp path")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("HDTS"), "{}", stderr(&out));

    let missing = dir.path().join("missing");
    let out = run(&["print", missing.to_str().expect("utf-8 temp path")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read credentials file"));
}

#[test]
fn help_and_version() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    for sub in ["fetch", "refresh", "print"] {
        assert!(help.contains(sub), "{help}");
    }
    assert!(help.contains("Exit codes"), "{help}");
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert!(stdout(&out).starts_with("init-fetcher "));
}
