//! One module per subcommand. Each takes typed settings and a printer, does its work
//! through `jit_agent`, and returns the exit status it earned.

mod agent;
mod auth;
mod completions;
mod config;
mod connect;
mod demo;
mod doctor;
mod edit;
mod enable;
mod extend;
mod list;
mod policy;
mod proxy;
mod request;
mod show;
mod ssh_config;
mod status;

use crate::args::Command;
use crate::error::{CommandKind, ExitStatus};
use crate::printer::Printer;
use crate::settings::GlobalSettings;

/// Which command this is, for hints that name its flags.
pub fn kind(command: &Command) -> CommandKind {
    match command {
        Command::Connect(_) => CommandKind::Connect,
        Command::Request(_) => CommandKind::Request,
        Command::Proxy(_) => CommandKind::Proxy,
        Command::Extend(_) => CommandKind::Extend,
        _ => CommandKind::Other,
    }
}

/// Runs one command.
pub async fn run(
    command: Command,
    settings: GlobalSettings,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    match command {
        Command::List(arguments) => list::run(arguments, &settings, &printer).await,
        Command::Show(arguments) => show::run(arguments, &settings, &printer).await,
        Command::Auth(command) => auth::run(command, &settings, &printer).await,
        Command::Connect(arguments) => connect::run(arguments, &settings, &printer).await,
        Command::Request(arguments) => request::run(arguments, &settings, &printer).await,
        Command::Enable(arguments) => enable::run_enable(arguments, &settings, &printer).await,
        Command::Disable(arguments) => enable::run_disable(arguments, &settings, &printer).await,
        Command::Edit(arguments) => edit::run(arguments, &settings, &printer).await,
        Command::Policy(command) => policy::run(command, &settings, &printer).await,
        Command::Doctor(arguments) => doctor::run(arguments, &settings, &printer).await,
        Command::Demo(arguments) => demo::run(arguments, &settings, &printer).await,
        Command::Status(arguments) => status::run(arguments, &settings, &printer).await,
        Command::Extend(arguments) => extend::run(arguments, &settings, &printer).await,
        Command::Agent(command) => agent::run(command, &settings, &printer).await,
        Command::Proxy(arguments) => proxy::run(arguments, &settings, &printer).await,
        Command::SshConfig(arguments) => ssh_config::run(arguments, &settings, &printer).await,
        Command::Config(command) => config::run(&command, &settings, &printer),
        Command::Completions(arguments) => completions::completions(arguments.shell, &printer),
        Command::Man => completions::man(&printer),
    }
}
