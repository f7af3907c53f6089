//! `jit config path|show`: where the configuration lives and what it resolves to.
//!
//! `show` prints the resolved settings in the configuration file's own schema, so its
//! output can be saved and read back with `--config` (secrets are never part of it).

use anyhow::Context as _;

use crate::args::ConfigCommand;
use crate::env_vars;
use crate::error::ExitStatus;
use crate::printer::Printer;
use crate::settings::GlobalSettings;

pub(crate) fn run(
    command: &ConfigCommand,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    match command {
        ConfigCommand::Path => {
            let path = settings
                .config_path
                .as_ref()
                .context("this platform has no user configuration directory; set JIT_CONFIG")?;
            if printer.is_json() {
                printer.json(&serde_json::json!({
                    "path": path,
                    "exists": path.is_file(),
                }));
            } else {
                printer.data(path.display());
            }
        }
        ConfigCommand::Show => {
            let file = settings.to_config_file();
            if printer.is_json() {
                printer.json(&file);
            } else {
                let text = toml::to_string_pretty(&file)
                    .context("could not render the settings as TOML")?;
                match &settings.config_path {
                    Some(path) if path.is_file() => {
                        printer.data(format!("# from {}", path.display()));
                    }
                    Some(path) => {
                        printer.data(format!("# {} does not exist; defaults", path.display()))
                    }
                    None => printer.data("# no configuration file; defaults"),
                }
                printer.data(text.trim_end());
                printer.info(format!(
                    "environment variables that change these: {}",
                    env_vars::ALL
                        .iter()
                        .map(|(name, _)| *name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    Ok(ExitStatus::Success)
}
