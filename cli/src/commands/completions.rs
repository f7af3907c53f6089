//! `jit completions SHELL` and the hidden `jit man`: generated from the clap definition,
//! so they can never drift from the real command line.

use clap::CommandFactory as _;

use crate::args::Cli;
use crate::error::ExitStatus;
use crate::printer::Printer;

pub(crate) fn completions(
    shell: clap_complete::Shell,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let mut buffer = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "jit", &mut buffer);
    printer.data(String::from_utf8_lossy(&buffer).trim_end());
    Ok(ExitStatus::Success)
}

pub(crate) fn man(printer: &Printer) -> anyhow::Result<ExitStatus> {
    let mut buffer = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut buffer)?;
    printer.data(String::from_utf8_lossy(&buffer).trim_end());
    Ok(ExitStatus::Success)
}
