//! Every binary's `--help` is its flag reference (docs/cli.md is generated from it), so every
//! flag and subcommand must say what it is for. The binaries' tests check it with this.

/// The arguments and subcommands of `cmd` and its subcommands that have no help text, each as
/// its path (`iddecorator certs --days`); clap's own `--help` and `--version` are not counted.
pub fn undocumented(cmd: &clap::Command) -> Vec<String> {
    let mut found = Vec::new();
    walk(cmd, cmd.get_name(), &mut found);
    found
}

fn walk(cmd: &clap::Command, path: &str, found: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if matches!(id, "help" | "version") {
            continue;
        }
        if arg.get_help().is_none() && arg.get_long_help().is_none() {
            let name = arg
                .get_long()
                .map_or_else(|| format!("<{id}>"), |long| format!("--{long}"));
            found.push(format!("{path} {name}"));
        }
    }
    for sub in cmd.get_subcommands() {
        let sub_path = format!("{path} {}", sub.get_name());
        if sub.get_about().is_none() && sub.get_long_about().is_none() {
            found.push(sub_path.clone());
        }
        walk(sub, &sub_path, found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    #[test]
    fn names_every_argument_and_subcommand_without_help() {
        let cmd = Command::new("tool")
            .version("1")
            .arg(Arg::new("given").long("given").help("Documented"))
            .arg(Arg::new("bare").long("bare"))
            .arg(Arg::new("file"))
            .subcommand(
                Command::new("sub")
                    .about("Documented")
                    .arg(Arg::new("deep").long("deep").action(ArgAction::SetTrue)),
            )
            .subcommand(Command::new("quiet"));
        assert_eq!(
            undocumented(&cmd),
            [
                "tool --bare",
                "tool <file>",
                "tool sub --deep",
                "tool quiet"
            ]
        );
    }
}
