//! Interop of the `hadoop-token` codec with Hadoop's own `Credentials`, through the Java harness
//! (`e2e/scripts/hadoop-client.sh creds-*`). Files Hadoop writes in both formats must read back
//! with the same fields (and re-encode to the same bytes); files we write must read in Hadoop
//! with the same fields; a token URL string we encode must decode in Hadoop.
//!
//! Only the harness jar and a JVM are needed, not the running bed: each test hands the harness an
//! empty Hadoop configuration of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use hadoop_token::identifier::{
    HDFS_DELEGATION_TOKEN, KMS_DELEGATION_TOKEN, SWEBHDFS_DELEGATION, WEBHDFS_DELEGATION,
};
use hadoop_token::{Credentials, DelegationIdentifier, Format, IdentifierFormat, Secret, Token};

/// The harness's fixed values (`Creds.java`): a secret key and the fake identifier fields.
const HARNESS_SECRET_ALIAS: &str = "k2h.e2e.secret";
const HARNESS_SECRET: &[u8] = b"not-a-real-secret";
const HARNESS_ISSUE_DATE: i64 = 1_700_000_000_000;
const HARNESS_MAX_LIFETIME: i64 = 7 * 24 * 3600 * 1000;
const HARNESS_FIRST_SEQUENCE: i32 = 41;
const HARNESS_MASTER_KEY_ID: i32 = 7;

/// A private scratch dir with an empty Hadoop configuration, so the harness needs no bed.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let conf = dir.path().join("conf");
        std::fs::create_dir(&conf).expect("create conf dir");
        std::fs::write(conf.join("core-site.xml"), "<configuration/>\n")
            .expect("write core-site.xml");
        Scratch { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `hadoop-client.sh ARGS` and returns stdout; any failure ends the test with the
    /// harness's own words.
    fn hadoop(&self, args: &[&str]) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/hadoop-client.sh");
        let out = Command::new(&script)
            .args(args)
            .env("HADOOP_CONF_DIR", self.path("conf"))
            .env("KRB5_CONFIG", self.path("no-krb5.conf"))
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {}: {e}. These tests need the Hadoop harness: run \
                     e2e/scripts/install-deps.sh (Java, Maven) and let the script build e2e/hadoop",
                    script.display()
                )
            });
        assert!(
            out.status.success(),
            "{} {args:?} failed ({}); it needs Java, Maven and a buildable e2e/hadoop \
             (e2e/scripts/install-deps.sh).\nstdout:\n{}\nstderr:\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("harness output is UTF-8")
    }
}

/// What Hadoop reports about a file (`creds-read` lines, tab-separated `key=value`).
#[derive(Debug, Default)]
struct HadoopView {
    version: String,
    tokens: BTreeMap<String, BTreeMap<String, String>>,
    secrets: BTreeMap<String, usize>,
}

fn parse_view(output: &str) -> HadoopView {
    let mut view = HadoopView::default();
    for line in output.lines() {
        let mut parts = line.split('\t');
        let tag = parts.next().unwrap_or_default();
        let fields: BTreeMap<String, String> = parts
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let field = |k: &str| fields.get(k).cloned().unwrap_or_default();
        match tag {
            "file" => view.version = field("version"),
            "token" => {
                view.tokens.insert(field("alias"), fields);
            }
            "secret" => {
                let len = field("length").parse().expect("secret length is a number");
                view.secrets.insert(field("alias"), len);
            }
            _ => {}
        }
    }
    view
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn format_arg(format: Format) -> &'static str {
    match format {
        Format::Writable => "0",
        Format::Protobuf => "1",
    }
}

/// Checks one of our tokens against Hadoop's line for the same alias.
fn assert_same_token(alias: &str, ours: &Token, theirs: &BTreeMap<String, String>) {
    let get = |k: &str| theirs.get(k).map(String::as_str).unwrap_or("<missing>");
    assert_eq!(get("kind"), ours.kind, "kind of {alias}");
    assert_eq!(get("service"), ours.service, "service of {alias}");
    assert_eq!(
        get("identifier"),
        hex(&ours.identifier),
        "identifier of {alias}"
    );
    assert_eq!(
        get("passwordLength"),
        ours.password.len().to_string(),
        "password length of {alias}"
    );
    let id = ours
        .decode_identifier()
        .unwrap_or_else(|e| panic!("identifier of {alias} does not decode: {e}"))
        .unwrap_or_else(|| panic!("{alias}: kind {} should have a known layout", ours.kind));
    assert_eq!(get("owner"), id.owner, "owner of {alias}");
    assert_eq!(get("renewer"), id.renewer, "renewer of {alias}");
    assert_eq!(get("realUser"), id.real_user, "real user of {alias}");
    assert_eq!(
        get("issueDate"),
        id.issue_date.to_string(),
        "issue date of {alias}"
    );
    assert_eq!(
        get("maxDate"),
        id.max_date.to_string(),
        "max date of {alias}"
    );
    assert_eq!(
        get("sequenceNumber"),
        id.sequence_number.to_string(),
        "sequence number of {alias}"
    );
    assert_eq!(
        get("masterKeyId"),
        id.master_key_id.to_string(),
        "master key id of {alias}"
    );
}

#[test]
fn files_hadoop_writes_read_with_the_same_fields() {
    let scratch = Scratch::new();
    let services = [
        (HDFS_DELEGATION_TOKEN, "127.0.0.1:8020"),
        (WEBHDFS_DELEGATION, "127.0.0.1:9870"),
        (SWEBHDFS_DELEGATION, "127.0.0.1:9871"),
        (KMS_DELEGATION_TOKEN, "kms://http@127.0.0.1:9600/kms"),
    ];
    for format in [Format::Writable, Format::Protobuf] {
        let file = scratch.path(&format!("hadoop-{}", format_arg(format)));
        let file_arg = file.to_str().expect("utf-8 temp path");
        let mut args = vec!["creds-write", file_arg, "--format", format_arg(format)];
        for (kind, service) in &services {
            args.extend(["--kind", kind, "--service", service]);
        }
        args.extend(["--owner", "bob", "--renewer", "yarn", "--real-user", "k2h"]);
        let view = parse_view(&scratch.hadoop(&args));

        let (creds, read_format) = Credentials::read_file(&file)
            .unwrap_or_else(|e| panic!("our reader refuses Hadoop's {format:?} file: {e:?}"));
        assert_eq!(read_format, format);
        assert_eq!(view.version, format_arg(format));
        assert_eq!(creds.tokens.len(), services.len());
        for (i, (kind, service)) in services.iter().enumerate() {
            let token = creds
                .token(service)
                .unwrap_or_else(|| panic!("alias {service} missing from {format:?} file"));
            assert_eq!(token.kind, *kind);
            assert_eq!(token.service, *service);
            let expected_password: Vec<u8> = (0..20).map(|j| (i * 20 + j) as u8).collect();
            assert_eq!(
                token.password.expose(),
                expected_password,
                "password of {service}"
            );
            let offset = i as i64;
            let expected = DelegationIdentifier {
                owner: "bob".into(),
                renewer: "yarn".into(),
                real_user: "k2h".into(),
                issue_date: HARNESS_ISSUE_DATE + offset,
                max_date: HARNESS_ISSUE_DATE + offset + HARNESS_MAX_LIFETIME,
                sequence_number: HARNESS_FIRST_SEQUENCE + i as i32,
                master_key_id: HARNESS_MASTER_KEY_ID,
            };
            assert_eq!(token.decode_identifier().ok().flatten(), Some(expected));
            assert_same_token(service, token, &view.tokens[*service]);
        }
        assert_eq!(creds.secret_keys.len(), 1);
        assert_eq!(creds.secret_keys[0].0, HARNESS_SECRET_ALIAS);
        assert_eq!(creds.secret_keys[0].1.expose(), HARNESS_SECRET);

        // Order is kept as read, so re-encoding gives back Hadoop's exact bytes.
        let original = std::fs::read(&file).expect("read Hadoop's file");
        assert_eq!(
            creds.encode(format).as_slice(),
            original,
            "re-encoding Hadoop's {format:?} file changes its bytes"
        );
    }
}

fn our_credentials() -> Credentials {
    let normal = DelegationIdentifier {
        owner: "alice".into(),
        renewer: "kube2hadoop".into(),
        real_user: "kube2hadoop/tokens@EXAMPLE.COM".into(),
        issue_date: 1_764_072_000_123,
        max_date: 1_764_676_800_123,
        sequence_number: 300,
        master_key_id: 12,
    };
    // Values at the edges of every VInt/VLong range.
    let extreme = DelegationIdentifier {
        owner: "o".repeat(200),
        renewer: String::new(),
        real_user: String::new(),
        issue_date: i64::MIN,
        max_date: i64::MAX,
        sequence_number: i32::MIN,
        master_key_id: -113,
    };
    let token = |id: &DelegationIdentifier, kind: &str, service: &str, pw: u8| Token {
        identifier: id.encode(IdentifierFormat::Writable),
        password: Secret::new(vec![pw; 20]),
        kind: kind.into(),
        service: service.into(),
    };
    let mut c = Credentials::default();
    c.add_token(
        "ha-hdfs:ns1",
        token(&normal, HDFS_DELEGATION_TOKEN, "ha-hdfs:ns1", 1),
    );
    c.add_token(
        "webhdfs",
        token(&extreme, WEBHDFS_DELEGATION, "127.0.0.1:9870", 2),
    );
    c.add_token(
        "swebhdfs",
        token(&normal, SWEBHDFS_DELEGATION, "127.0.0.1:9871", 3),
    );
    c.add_token(
        "kms",
        token(&normal, KMS_DELEGATION_TOKEN, "kms://http@kms:9600/kms", 4),
    );
    c.add_secret_key("app.key", Secret::new(vec![7; 32]));
    c.add_secret_key("empty.key", Secret::new(Vec::new()));
    c
}

#[test]
fn files_we_write_read_in_hadoop_with_the_same_fields() {
    let scratch = Scratch::new();
    let creds = our_credentials();
    for format in [Format::Writable, Format::Protobuf] {
        let file = scratch.path(&format!("ours-{}", format_arg(format)));
        std::fs::write(&file, creds.encode(format)).expect("write our file");
        let view =
            parse_view(&scratch.hadoop(&["creds-read", file.to_str().expect("utf-8 temp path")]));
        assert_eq!(view.version, format_arg(format));
        assert_eq!(view.tokens.len(), creds.tokens.len(), "{view:?}");
        for (alias, token) in &creds.tokens {
            let theirs = view
                .tokens
                .get(alias)
                .unwrap_or_else(|| panic!("Hadoop does not see alias {alias} in {format:?}"));
            assert_same_token(alias, token, theirs);
        }
        let expected_secrets: BTreeMap<String, usize> = creds
            .secret_keys
            .iter()
            .map(|(alias, key)| (alias.clone(), key.len()))
            .collect();
        assert_eq!(view.secrets, expected_secrets);
    }
}

#[test]
fn url_string_we_encode_decodes_in_hadoop() {
    let scratch = Scratch::new();
    let creds = our_credentials();
    let (alias, token) = &creds.tokens[0];
    let file = scratch.path("imported");
    scratch.hadoop(&[
        "creds-import",
        file.to_str().expect("utf-8 temp path"),
        "--url-string",
        &token.to_url_string(),
        "--alias",
        alias,
        "--format",
        "0",
    ]);
    let (back, _) = Credentials::read_file(&file).expect("read Hadoop's imported file");
    assert_eq!(back.token(alias), Some(token));
}
