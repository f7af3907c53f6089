//! One module per subcommand. Each takes typed settings and a printer, does its work
//! through `jit_agent`, and returns the exit status it earned.

mod common;
mod completions;
mod config;

use crate::args::Command;
use crate::error::ExitStatus;
use crate::printer::Printer;
use crate::settings::GlobalSettings;

/// Runs one command.
pub async fn run(
    command: Command,
    settings: GlobalSettings,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    match command {
        Command::Config(command) => config::run(&command, &settings, &printer),
        Command::Completions(arguments) => completions::completions(arguments.shell, &printer),
        Command::Man => completions::man(&printer),
        other => Err(anyhow::anyhow!(
            "`{}` is not available in this build yet",
            command_name(&other)
        )),
    }
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::List(_) => "list",
        Command::Show(_) => "show",
        Command::Connect(_) => "connect",
        Command::Request(_) => "request",
        Command::Enable(_) => "enable",
        Command::Disable(_) => "disable",
        Command::Status(_) => "status",
        Command::Extend(_) => "extend",
        Command::Proxy(_) => "proxy",
        Command::SshConfig(_) => "ssh-config",
        Command::Agent(_) => "agent",
        Command::Auth(_) => "auth",
        Command::Config(_) => "config",
        Command::Demo(_) => "demo",
        Command::Completions(_) => "completions",
        Command::Man => "man",
    }
}
