//! Clients we did not write, against the `jit-emulator` binary: Microsoft's Python SDKs
//! (azure-identity, azure-mgmt-security, -network, -compute) and the Azure CLI list JIT
//! policies, create one, initiate access, see the NSG rules JIT wrote, write and delete a
//! rule through the long-running pollers, read Defender plans and call the list routes
//! (`foreign-clients/check_foreign_clients.py`), each with its default api-versions.
//!
//! Twice: with the versions pinned in `foreign-clients/requirements.txt` (one venv,
//! `JIT_FOREIGN_CLIENTS_VENV`) and with the newest releases on PyPI
//! (`JIT_FOREIGN_CLIENTS_LATEST`: a directory with an `sdk/` venv holding the newest SDKs
//! and a `cli/` venv holding the newest Azure CLI, kept apart because the CLI pins older
//! SDKs). A new client release that sends an api-version the emulator refuses fails the
//! second run.
//!
//! The venvs need PyPI to make, which a plain `cargo test` cannot assume, so both tests
//! are ignored by default and run on purpose: `.ci/run` (and
//! `tests/emulator/foreign-clients/run.sh`) make the venvs, set the variables and run
//! them with `--ignored`. Run that way without a variable, or with a broken venv, a test
//! fails and says how to make it.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_jit-emulator");
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/foreign-clients/check_foreign_clients.py"
);
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(900);
const HOW: &str = "create it with tests/emulator/foreign-clients/run.sh";

#[test]
#[ignore = "needs a venv with the pinned Python SDKs and Azure CLI: .ci/run or tests/emulator/foreign-clients/run.sh"]
fn pinned_python_sdks_and_azure_cli_work_against_the_emulator() {
    let venv = std::env::var_os("JIT_FOREIGN_CLIENTS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("JIT_FOREIGN_CLIENTS_VENV names the pinned venv: {HOW}"));
    check_clients(&venv, &venv);
}

#[test]
#[ignore = "needs venvs with the newest Python SDKs and Azure CLI: .ci/run or tests/emulator/foreign-clients/run.sh"]
fn newest_python_sdks_and_azure_cli_work_against_the_emulator() {
    let latest = std::env::var_os("JIT_FOREIGN_CLIENTS_LATEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!("JIT_FOREIGN_CLIENTS_LATEST names the directory of the newest clients' venvs (sdk/, cli/): {HOW}")
        });
    check_clients(&latest.join("sdk"), &latest.join("cli"));
}

/// Runs the check script with the SDKs of `sdk_venv` and the `az` of `cli_venv` against a
/// fresh emulator; panics unless every check passed.
fn check_clients(sdk_venv: &Path, cli_venv: &Path) {
    let python = sdk_venv.join("bin/python");
    assert!(
        python.is_file(),
        "{} has no bin/python: {HOW}",
        sdk_venv.display()
    );
    let az = cli_venv.join("bin/az");
    assert!(az.is_file(), "{} has no bin/az: {HOW}", cli_venv.display());
    let imports = Command::new(&python)
        .args([
            "-c",
            "import azure.identity, azure.mgmt.security, azure.mgmt.network, azure.mgmt.compute",
        ])
        .output()
        .expect("the venv's python runs");
    assert!(
        imports.status.success(),
        "the venv at {} lacks the SDKs ({HOW}): {}",
        sdk_venv.display(),
        String::from_utf8_lossy(&imports.stderr)
    );

    let mut emulator = Command::new(BINARY)
        .args(["--initiating-delay", "1s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the emulator binary starts");
    let mut line = String::new();
    BufReader::new(emulator.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the emulator prints its JSON line");
    assert!(line.starts_with('{'), "emulator line: {line:?}");

    let passed = run_script(&python, sdk_venv, &az, line.trim());
    drop(emulator.stdin.take());
    let _ = emulator.wait();
    assert!(passed, "a foreign client failed (see its output above)");
}

/// Runs the check script with a bounded wait; true when it passed.
fn run_script(python: &Path, venv: &Path, az: &Path, info_line: &str) -> bool {
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut script = Command::new(python)
        .arg(SCRIPT)
        .env("JIT_EMULATOR_INFO", info_line)
        .env("JIT_AZ", az)
        .env("PATH", path)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .spawn()
        .expect("the check script starts");
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    loop {
        if let Some(status) = script.try_wait().expect("try_wait") {
            return status.success();
        }
        if Instant::now() > deadline {
            let _ = script.kill();
            let _ = script.wait();
            panic!("the foreign-client checks did not finish within {SCRIPT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
