//! Configuration: flags with `TOKEN_SERVICE_*` environment fallbacks, plus an optional YAML
//! file for what does not fit on a command line (Hadoop services, mapping rules, LDAP
//! filters). A flag wins over the file. Everything is read (`host`) and then checked
//! (`resolve`) before serving, and every bad value is reported at once.

mod directory;
mod error;
mod file;
mod flags;
mod host;
mod resolve;
mod settings;

pub use error::{ConfigError, ConfigErrors};
pub use file::{
    FileConfig, FileKerberos, FileKms, FileLdap, FileNameNode, FileNameService, KindSpec,
};
pub use flags::Cli;
pub use host::HostFacts;
pub use settings::{DirectorySettings, LedgerSettings, Settings};

impl Settings {
    /// Reads the `--config` file and the files the settings name, then resolves.
    pub fn load(cli: Cli) -> Result<Settings, ConfigErrors> {
        let (file, host) = HostFacts::read(&cli)?;
        Settings::resolve(cli, file, host)
    }
}

#[cfg(test)]
mod tests;
