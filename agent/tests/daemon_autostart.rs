//! Login entries written into temp directories: install, reinstall over an entry that
//! runs another program (reported), uninstall, uninstall again. The session manager is
//! never told (`activate = false`), so the real user session is untouched.

use std::path::{Path, PathBuf};

use jit_agent::daemon::autostart::{
    Activation, LAUNCH_AGENT_LABEL, Mechanism, install, program_in_entry, uninstall,
};

fn args() -> Vec<String> {
    vec!["run".to_owned()]
}

fn check_install_cycle(mechanism: &Mechanism, file: &Path) {
    let first = Path::new("/opt/jit/bin/jit-agent");
    let report = install(mechanism, first, &args(), false).expect("install");
    assert_eq!(report.location, file.display().to_string());
    assert_eq!(report.previous_program, None);
    assert!(!report.pointed_elsewhere);
    assert_eq!(
        report.activation,
        Activation::Skipped("not requested".into())
    );
    let content = std::fs::read_to_string(file).expect("the entry is written");
    assert_eq!(
        program_in_entry(mechanism, &content),
        Some(PathBuf::from(first))
    );

    // The same program again: nothing to warn about.
    let again = install(mechanism, first, &args(), false).expect("reinstall");
    assert_eq!(again.previous_program.as_deref(), Some(first));
    assert!(!again.pointed_elsewhere);

    // Another copy of jit: replaced, and the old target reported.
    let second = Path::new("/home/me/.cargo/bin/jit-agent");
    let moved = install(mechanism, second, &args(), false).expect("install elsewhere");
    assert_eq!(moved.previous_program.as_deref(), Some(first));
    assert!(moved.pointed_elsewhere);
    let content = std::fs::read_to_string(file).expect("the entry is rewritten");
    assert_eq!(
        program_in_entry(mechanism, &content),
        Some(PathBuf::from(second))
    );

    let removed = uninstall(mechanism, false).expect("uninstall");
    assert_eq!(removed.removed, Some(file.display().to_string()));
    assert!(!file.exists());
    let nothing = uninstall(mechanism, false).expect("uninstall again");
    assert_eq!(nothing.removed, None);
}

#[test]
fn systemd_user_unit_install_and_uninstall() {
    let temp = tempfile::tempdir().expect("temp dir");
    let unit_file = temp.path().join("systemd/user/jit-agent.service");
    let mechanism = Mechanism::SystemdUser {
        unit_file: unit_file.clone(),
    };
    check_install_cycle(&mechanism, &unit_file);
}

#[test]
fn launch_agent_install_and_uninstall() {
    let temp = tempfile::tempdir().expect("temp dir");
    let plist_file = temp
        .path()
        .join("Library/LaunchAgents")
        .join(format!("{LAUNCH_AGENT_LABEL}.plist"));
    let mechanism = Mechanism::LaunchAgent {
        plist_file: plist_file.clone(),
    };
    check_install_cycle(&mechanism, &plist_file);
}

#[test]
fn the_default_location_follows_the_os() {
    let mechanism = Mechanism::for_this_os().expect("a mechanism for this OS");
    if cfg!(target_os = "linux") {
        assert!(
            mechanism
                .location()
                .ends_with("systemd/user/jit-agent.service"),
            "{mechanism:?}"
        );
    }
}
