//! Starting the agent at login: a systemd user unit (Linux), a LaunchAgent (macOS), or a
//! `Run` value in the user's registry (Windows).
//!
//! The CLI starts the agent on demand anyway; an autostart entry only matters for
//! windows that outlive a logout or reboot (the agent reloads them and still warns).
//! Each mechanism is split into a pure function that renders the entry (unit-tested)
//! and side effects that take the entry's location, so tests write into temp dirs and
//! never touch the real user session (`activate = false` skips `systemctl`/`launchctl`).
//!
//! On Windows the `Run` value (`HKCU\Software\Microsoft\Windows\CurrentVersion\Run`) is
//! used rather than a script in the Startup folder, because a script flashes a console
//! window at every login while `jit-agent.exe` is a windowless program. It is written
//! with `reg.exe` (argv, no shell) and is not exercised by the tests here.
//!
//! Installing over an entry that runs another program (an old install path, a second
//! copy of `jit`) replaces it and reports what it pointed at, so the CLI can warn.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The systemd unit's file name.
pub const SYSTEMD_UNIT: &str = "jit-agent.service";
/// The LaunchAgent's label (and plist file stem).
pub const LAUNCH_AGENT_LABEL: &str = "io.github.jit-cli.agent";
/// The registry key holding per-user login programs.
pub const WINDOWS_RUN_KEY: &str = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run";
/// The value name under [`WINDOWS_RUN_KEY`].
pub const WINDOWS_RUN_VALUE: &str = "jit-agent";

/// Where and how the agent is started at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    /// A systemd user unit file.
    SystemdUser {
        /// The unit file, normally `~/.config/systemd/user/jit-agent.service`.
        unit_file: PathBuf,
    },
    /// A launchd LaunchAgent plist.
    LaunchAgent {
        /// The plist, normally `~/Library/LaunchAgents/io.github.jit-cli.agent.plist`.
        plist_file: PathBuf,
    },
    /// A value under the user's `Run` registry key.
    WindowsRun,
}

/// Why autostart could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AutostartError {
    /// This OS has no mechanism here, or the user's directories are unknown.
    #[error("starting the agent at login is not supported here: {0}")]
    Unsupported(String),
    /// Writing or removing the entry failed.
    #[error("{action} {location}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Which entry.
        location: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// What [`install`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    /// The entry written (file path or registry value).
    pub location: String,
    /// The program an earlier entry ran, when there was one.
    pub previous_program: Option<PathBuf>,
    /// Whether that earlier entry ran another program than this one.
    pub pointed_elsewhere: bool,
    /// Whether the session manager was told.
    pub activation: Activation,
}

/// What [`uninstall`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UninstallReport {
    /// The entry removed, or `None` when there was none.
    pub removed: Option<String>,
    /// Whether the session manager was told.
    pub activation: Activation,
}

/// Whether `systemctl`/`launchctl` (or `reg`) was run, and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activation {
    /// The session manager accepted the change.
    Done,
    /// Not attempted, with why (asked not to, or the tool is missing).
    Skipped(String),
    /// The tool failed; the entry is still written and takes effect at next login.
    Failed(String),
}

impl Mechanism {
    /// The mechanism for this OS at its usual per-user location.
    pub fn for_this_os() -> Result<Self, AutostartError> {
        let dirs = directories::BaseDirs::new()
            .ok_or_else(|| AutostartError::Unsupported("no home directory".to_owned()))?;
        if cfg!(windows) {
            Ok(Mechanism::WindowsRun)
        } else if cfg!(target_os = "macos") {
            Ok(Mechanism::LaunchAgent {
                plist_file: dirs
                    .home_dir()
                    .join("Library/LaunchAgents")
                    .join(format!("{LAUNCH_AGENT_LABEL}.plist")),
            })
        } else if cfg!(target_os = "linux") {
            Ok(Mechanism::SystemdUser {
                unit_file: dirs.config_dir().join("systemd/user").join(SYSTEMD_UNIT),
            })
        } else {
            Err(AutostartError::Unsupported(
                "only Linux (systemd), macOS and Windows are supported".to_owned(),
            ))
        }
    }

    /// The entry's location, for messages.
    pub fn location(&self) -> String {
        match self {
            Mechanism::SystemdUser { unit_file } => unit_file.display().to_string(),
            Mechanism::LaunchAgent { plist_file } => plist_file.display().to_string(),
            Mechanism::WindowsRun => format!(r"{WINDOWS_RUN_KEY}\{WINDOWS_RUN_VALUE}"),
        }
    }
}

/// The systemd user unit that runs `program args…`.
pub fn render_systemd_unit(program: &Path, args: &[String]) -> String {
    let command_line = std::iter::once(program.to_string_lossy().into_owned())
        .chain(args.iter().cloned())
        .map(|word| systemd_quote(&word))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "# Written by `jit agent install`; remove with `jit agent uninstall`.\n\
         [Unit]\n\
         Description=jit agent: warns before just-in-time VM access ends\n\
         Documentation=https://github.com/jit-cli/jit/blob/main/docs/agent.md\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={command_line}\n\
         Restart=on-failure\n\
         RestartSec=10\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n"
    )
}

/// The LaunchAgent plist that runs `program args…` at login.
pub fn render_launch_agent(program: &Path, args: &[String]) -> String {
    let arguments: String = std::iter::once(program.to_string_lossy().into_owned())
        .chain(args.iter().cloned())
        .map(|word| format!("        <string>{}</string>\n", xml_escape(&word)))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <!-- Written by `jit agent install`; remove with `jit agent uninstall`. -->\n\
         <plist version=\"1.0\">\n\
         <dict>\n\
         \x20   <key>Label</key>\n\
         \x20   <string>{LAUNCH_AGENT_LABEL}</string>\n\
         \x20   <key>ProgramArguments</key>\n\
         \x20   <array>\n\
         {arguments}\
         \x20   </array>\n\
         \x20   <key>RunAtLoad</key>\n\
         \x20   <true/>\n\
         \x20   <key>KeepAlive</key>\n\
         \x20   <dict>\n\
         \x20       <key>SuccessfulExit</key>\n\
         \x20       <false/>\n\
         \x20   </dict>\n\
         \x20   <key>ProcessType</key>\n\
         \x20   <string>Interactive</string>\n\
         </dict>\n\
         </plist>\n"
    )
}

/// The command line stored in the `Run` value: the program quoted, then its arguments.
pub fn render_windows_run_value(program: &Path, args: &[String]) -> String {
    std::iter::once(program.to_string_lossy().into_owned())
        .chain(args.iter().cloned())
        .map(|word| {
            if word.is_empty() || word.contains([' ', '\t', '"']) {
                format!("\"{}\"", word.replace('"', "\\\""))
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The program an existing entry runs, read from its content.
pub fn program_in_entry(mechanism: &Mechanism, content: &str) -> Option<PathBuf> {
    match mechanism {
        Mechanism::SystemdUser { .. } => content
            .lines()
            .find_map(|line| line.trim().strip_prefix("ExecStart="))
            .and_then(first_word),
        Mechanism::LaunchAgent { .. } => {
            let after_key = content.split_once("<key>ProgramArguments</key>")?.1;
            let after_open = after_key.split_once("<string>")?.1;
            let value = after_open.split_once("</string>")?.0;
            Some(PathBuf::from(xml_unescape(value)))
        }
        Mechanism::WindowsRun => {
            // `reg query` prints `    jit-agent    REG_SZ    "C:\…\jit-agent.exe" run`.
            let data = content
                .lines()
                .find_map(|line| line.split_once("REG_SZ").map(|(_, data)| data.trim()))
                .unwrap_or(content.trim());
            first_word(data)
        }
    }
}

/// Writes the entry for `program args…` and (when `activate`) tells the session
/// manager, so the agent also starts now.
pub fn install(
    mechanism: &Mechanism,
    program: &Path,
    args: &[String],
    activate: bool,
) -> Result<InstallReport, AutostartError> {
    let location = mechanism.location();
    let previous_program =
        read_entry(mechanism)?.and_then(|content| program_in_entry(mechanism, &content));
    let pointed_elsewhere = previous_program
        .as_deref()
        .is_some_and(|previous| !same_program(previous, program));
    let activation = match mechanism {
        Mechanism::SystemdUser { unit_file } => {
            write_entry(unit_file, &render_systemd_unit(program, args), &location)?;
            if activate {
                run_all(&[
                    &["systemctl", "--user", "daemon-reload"],
                    &["systemctl", "--user", "enable", "--now", SYSTEMD_UNIT],
                ])
            } else {
                Activation::Skipped("not requested".to_owned())
            }
        }
        Mechanism::LaunchAgent { plist_file } => {
            write_entry(plist_file, &render_launch_agent(program, args), &location)?;
            if activate {
                let domain = gui_domain();
                let target = format!("{domain}/{LAUNCH_AGENT_LABEL}");
                let plist = plist_file.to_string_lossy().into_owned();
                // Unload a previous version first; failing to is normal when none is loaded.
                let _ = run(&["launchctl", "bootout", &target]);
                run_all(&[&["launchctl", "bootstrap", &domain, &plist]])
            } else {
                Activation::Skipped("not requested".to_owned())
            }
        }
        Mechanism::WindowsRun => {
            let value = render_windows_run_value(program, args);
            match run(&[
                "reg",
                "add",
                WINDOWS_RUN_KEY,
                "/v",
                WINDOWS_RUN_VALUE,
                "/t",
                "REG_SZ",
                "/d",
                &value,
                "/f",
            ]) {
                Activation::Failed(reason) | Activation::Skipped(reason) => {
                    return Err(AutostartError::Io {
                        action: "could not write",
                        location,
                        source: io::Error::other(reason),
                    });
                }
                // The value takes effect at next login; the CLI starts the agent now.
                Activation::Done => Activation::Skipped("takes effect at next login".to_owned()),
            }
        }
    };
    Ok(InstallReport {
        location,
        previous_program,
        pointed_elsewhere,
        activation,
    })
}

/// Removes the entry (and, when `deactivate`, stops the agent the session manager runs).
pub fn uninstall(
    mechanism: &Mechanism,
    deactivate: bool,
) -> Result<UninstallReport, AutostartError> {
    let location = mechanism.location();
    let Some(file) = entry_file(mechanism) else {
        return uninstall_windows_run(mechanism, location);
    };
    let activation = match mechanism {
        Mechanism::SystemdUser { .. } if deactivate => {
            run_all(&[&["systemctl", "--user", "disable", "--now", SYSTEMD_UNIT]])
        }
        Mechanism::LaunchAgent { .. } if deactivate => {
            let target = format!("{}/{LAUNCH_AGENT_LABEL}", gui_domain());
            run_all(&[&["launchctl", "bootout", &target]])
        }
        _ => Activation::Skipped("not requested".to_owned()),
    };
    let removed = match std::fs::remove_file(file) {
        Ok(()) => Some(location),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(AutostartError::Io {
                action: "could not remove",
                location,
                source,
            });
        }
    };
    if deactivate && matches!(mechanism, Mechanism::SystemdUser { .. }) {
        let _ = run(&["systemctl", "--user", "daemon-reload"]);
    }
    Ok(UninstallReport {
        removed,
        activation,
    })
}

fn uninstall_windows_run(
    mechanism: &Mechanism,
    location: String,
) -> Result<UninstallReport, AutostartError> {
    if read_entry(mechanism)?.is_none() {
        return Ok(UninstallReport {
            removed: None,
            activation: Activation::Skipped("no entry".to_owned()),
        });
    }
    match run(&[
        "reg",
        "delete",
        WINDOWS_RUN_KEY,
        "/v",
        WINDOWS_RUN_VALUE,
        "/f",
    ]) {
        Activation::Done => Ok(UninstallReport {
            removed: Some(location),
            activation: Activation::Skipped("nothing to stop".to_owned()),
        }),
        Activation::Failed(reason) | Activation::Skipped(reason) => Err(AutostartError::Io {
            action: "could not remove",
            location,
            source: io::Error::other(reason),
        }),
    }
}

/// The file an entry lives in (`None` for the registry).
fn entry_file(mechanism: &Mechanism) -> Option<&Path> {
    match mechanism {
        Mechanism::SystemdUser { unit_file } => Some(unit_file),
        Mechanism::LaunchAgent { plist_file } => Some(plist_file),
        Mechanism::WindowsRun => None,
    }
}

/// The current entry's content, `None` when there is none.
fn read_entry(mechanism: &Mechanism) -> Result<Option<String>, AutostartError> {
    let Some(file) = entry_file(mechanism) else {
        if !cfg!(windows) {
            return Ok(None);
        }
        let output = Command::new("reg")
            .args(["query", WINDOWS_RUN_KEY, "/v", WINDOWS_RUN_VALUE])
            .output();
        return Ok(match output {
            Ok(output) if output.status.success() => {
                Some(String::from_utf8_lossy(&output.stdout).into_owned())
            }
            _ => None,
        });
    };
    match std::fs::read_to_string(file) {
        Ok(content) => Ok(Some(content)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AutostartError::Io {
            action: "could not read",
            location: file.display().to_string(),
            source,
        }),
    }
}

/// Writes `content` to `file` through a temp file and a rename, creating the directory.
fn write_entry(file: &Path, content: &str, location: &str) -> Result<(), AutostartError> {
    let io_error = |action: &'static str| {
        move |source| AutostartError::Io {
            action,
            location: location.to_owned(),
            source,
        }
    };
    let directory = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(directory).map_err(io_error("could not create the directory of"))?;
    let temp = directory.join(format!(
        ".{}.tmp-{}",
        file.file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&temp, content).map_err(io_error("could not write"))?;
    std::fs::rename(&temp, file).map_err(|source| {
        let _ = std::fs::remove_file(&temp);
        io_error("could not write")(source)
    })
}

/// Whether two program paths name the same file (after resolving links when possible).
fn same_program(first: &Path, second: &Path) -> bool {
    let resolve = |path: &Path| std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    resolve(first) == resolve(second)
}

/// launchd's per-user GUI domain, `gui/<uid>`.
fn gui_domain() -> String {
    #[cfg(unix)]
    let uid = rustix::process::geteuid().as_raw();
    #[cfg(not(unix))]
    let uid = 0;
    format!("gui/{uid}")
}

/// Runs each command in turn, stopping at the first failure.
fn run_all(commands: &[&[&str]]) -> Activation {
    for command in commands {
        match run(command) {
            Activation::Done => {}
            other => return other,
        }
    }
    Activation::Done
}

/// Runs one command (argv, no shell); a missing tool is `Skipped`.
fn run(argv: &[&str]) -> Activation {
    let Some((program, args)) = argv.split_first() else {
        return Activation::Skipped("nothing to run".to_owned());
    };
    match Command::new(program).args(args).output() {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            Activation::Skipped(format!("{program} not found"))
        }
        Err(error) => Activation::Failed(format!("{program}: {error}")),
        Ok(output) if output.status.success() => Activation::Done,
        Ok(output) => Activation::Failed(format!(
            "`{}` failed ({}): {}",
            argv.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

/// Quotes a word for a systemd command line: always double quotes, with `\` and `"`
/// escaped, and `%` / `$` doubled so systemd expands neither specifiers nor variables.
fn systemd_quote(word: &str) -> String {
    let escaped = word
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    format!("\"{escaped}\"")
}

/// The first word of a command line, honouring double quotes (and `\"`, `\\` inside).
fn first_word(command_line: &str) -> Option<PathBuf> {
    let text = command_line.trim_start();
    let word = if let Some(quoted) = text.strip_prefix('"') {
        let mut word = String::new();
        let mut chars = quoted.chars();
        while let Some(character) = chars.next() {
            match character {
                '"' => break,
                '\\' => match chars.next() {
                    Some(next @ ('"' | '\\')) => word.push(next),
                    Some(next) => {
                        word.push('\\');
                        word.push(next);
                    }
                    None => word.push('\\'),
                },
                other => word.push(other),
            }
        }
        word.replace("%%", "%").replace("$$", "$")
    } else {
        text.split_whitespace().next()?.to_owned()
    };
    (!word.is_empty()).then(|| PathBuf::from(word))
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> Vec<String> {
        vec!["run".to_owned()]
    }

    #[test]
    fn the_systemd_unit_runs_the_program_quoted() {
        let unit = render_systemd_unit(Path::new("/opt/my tools/jit-agent"), &args());
        assert!(
            unit.contains("ExecStart=\"/opt/my tools/jit-agent\" \"run\"\n"),
            "{unit}"
        );
        assert!(unit.contains("WantedBy=default.target"));
        let mechanism = Mechanism::SystemdUser {
            unit_file: PathBuf::new(),
        };
        assert_eq!(
            program_in_entry(&mechanism, &unit),
            Some(PathBuf::from("/opt/my tools/jit-agent"))
        );
        let odd = render_systemd_unit(Path::new("/home/a%b/$x\"y/jit-agent"), &args());
        assert_eq!(
            program_in_entry(&mechanism, &odd),
            Some(PathBuf::from("/home/a%b/$x\"y/jit-agent"))
        );
    }

    #[test]
    fn the_launch_agent_lists_the_program_and_arguments() {
        let plist = render_launch_agent(Path::new("/Applications/A&B/jit-agent"), &args());
        assert!(plist.contains("<string>/Applications/A&amp;B/jit-agent</string>"));
        assert!(plist.contains("<string>run</string>"));
        assert!(plist.contains(&format!("<string>{LAUNCH_AGENT_LABEL}</string>")));
        let mechanism = Mechanism::LaunchAgent {
            plist_file: PathBuf::new(),
        };
        assert_eq!(
            program_in_entry(&mechanism, &plist),
            Some(PathBuf::from("/Applications/A&B/jit-agent"))
        );
    }

    #[test]
    fn the_windows_run_value_quotes_paths_with_spaces() {
        let value =
            render_windows_run_value(Path::new(r"C:\Program Files\jit\jit-agent.exe"), &args());
        assert_eq!(value, r#""C:\Program Files\jit\jit-agent.exe" run"#);
        let query = format!(
            "\r\nHKEY_CURRENT_USER\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\r\n    jit-agent    REG_SZ    {value}\r\n"
        );
        assert_eq!(
            program_in_entry(&Mechanism::WindowsRun, &query),
            Some(PathBuf::from(r"C:\Program Files\jit\jit-agent.exe"))
        );
    }
}
