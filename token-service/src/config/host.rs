//! The edge: everything the configuration needs from this machine (the `--config` file, the
//! files it names, the environment) is read here, once, into plain data. Checking it
//! (`Settings::resolve`) then touches nothing, so it can be tested without files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::error::ConfigError;
use super::file::FileConfig;
use super::flags::Cli;

/// The files the settings name, flag over file. Validation takes its paths from here too, so
/// it asks about exactly the files that were read.
pub struct NamedFiles {
    pub keytab: Option<PathBuf>,
    pub krb5_conf: Option<PathBuf>,
    pub users_file: Option<PathBuf>,
    pub ldap_ca_file: Option<PathBuf>,
    /// Only with an LDAP URL: without one no password is needed, so none is read.
    pub ldap_bind_password_file: Option<PathBuf>,
}

impl NamedFiles {
    pub fn of(cli: &Cli, file: &FileConfig) -> NamedFiles {
        let krb = file.kerberos.as_ref();
        let ldap = file.ldap.as_ref();
        let ldap_url = cli.ldap_url.is_some() || ldap.is_some_and(|l| l.url.is_some());
        NamedFiles {
            keytab: cli.keytab.clone().or_else(|| krb?.keytab.clone()),
            krb5_conf: cli.krb5_conf.clone().or_else(|| krb?.krb5_conf.clone()),
            users_file: cli.users_file.clone().or_else(|| file.users_file.clone()),
            ldap_ca_file: cli.ldap_ca_file.clone().or_else(|| ldap?.ca_file.clone()),
            ldap_bind_password_file: cli
                .ldap_bind_password_file
                .clone()
                .or_else(|| ldap?.bind_password_file.clone())
                .filter(|_| ldap_url),
        }
    }

    /// The files that must only be readable now (their users read them later).
    fn opened(&self) -> impl Iterator<Item = &PathBuf> {
        [
            &self.keytab,
            &self.krb5_conf,
            &self.users_file,
            &self.ldap_ca_file,
        ]
        .into_iter()
        .flatten()
    }
}

/// What was found on this machine. No `Debug`: it holds a password.
#[derive(Default)]
pub struct HostFacts {
    /// Named files that could not be opened, with the system's reason; a named file not
    /// listed here was opened.
    pub unreadable: BTreeMap<PathBuf, String>,
    /// The first line of each secret file read (the LDAP bind password), or why it could not
    /// be read.
    pub first_lines: BTreeMap<PathBuf, Result<Zeroizing<String>, String>>,
    /// This replica's name in the Lease when --replica-id is not given.
    pub default_replica_id: String,
}

impl HostFacts {
    /// Reads `--config` (a file that cannot be read or parsed stops here: nothing else can be
    /// checked without it), then every file it and the flags name.
    pub fn read(cli: &Cli) -> Result<(FileConfig, HostFacts), ConfigError> {
        let file = match &cli.config {
            None => FileConfig::default(),
            Some(path) => read_config_file(path)?,
        };
        let named = NamedFiles::of(cli, &file);
        let mut facts = HostFacts {
            default_replica_id: default_replica_id(),
            ..HostFacts::default()
        };
        for path in named.opened() {
            if let Err(e) = std::fs::File::open(path) {
                facts.unreadable.insert(path.clone(), e.to_string());
            }
        }
        if let Some(path) = named.ldap_bind_password_file {
            let line = first_line(&path);
            facts.first_lines.insert(path, line);
        }
        Ok((file, facts))
    }
}

fn read_config_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::ConfigFileUnreadable {
            path: path.to_owned(),
            source,
        })?;
    serde_yaml_ng::from_str(&text).map_err(|source| ConfigError::ConfigFileInvalid {
        path: path.to_owned(),
        source,
    })
}

/// The first line of a secret file; the whole text is wiped when dropped, too.
fn first_line(path: &Path) -> Result<Zeroizing<String>, String> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| e.to_string())?);
    Ok(Zeroizing::new(
        text.lines().next().unwrap_or_default().to_owned(),
    ))
}

fn default_replica_id() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "token-service".into());
    format!("{host}-{}", std::process::id())
}
