//! Clients we did not write, against the `jit-emulator` binary: Microsoft's Python SDKs
//! (azure-identity, azure-mgmt-security, -network, -compute) and the Azure CLI list JIT
//! policies, create one, initiate access and see the NSG rules JIT wrote
//! (`foreign-clients/check_foreign_clients.py`).
//!
//! They need a Python virtual environment with those packages (and PyPI to make it),
//! which a plain `cargo test` cannot assume, so the test is ignored by default and run on
//! purpose: `.ci/run` (and `tests/emulator/foreign-clients/run.sh`) make the venv, set
//! `JIT_FOREIGN_CLIENTS_VENV` and run it with `--ignored`. Run that way without the
//! variable, or with a broken venv, it fails and says how to make one.

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

#[test]
#[ignore = "needs a venv with Microsoft's Python SDKs and the Azure CLI: .ci/run or tests/emulator/foreign-clients/run.sh"]
fn microsoft_python_sdks_and_the_azure_cli_work_against_the_emulator() {
    let venv = std::env::var_os("JIT_FOREIGN_CLIENTS_VENV")
        .map(PathBuf::from)
        .expect("JIT_FOREIGN_CLIENTS_VENV names the venv: create it with tests/emulator/foreign-clients/run.sh");
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "JIT_FOREIGN_CLIENTS_VENV={} has no bin/python: create it with tests/emulator/foreign-clients/run.sh",
        venv.display()
    );
    assert!(
        venv.join("bin/az").is_file(),
        "JIT_FOREIGN_CLIENTS_VENV={} has no bin/az: install tests/emulator/foreign-clients/requirements.txt into it",
        venv.display()
    );
    let imports = Command::new(&python)
        .args([
            "-c",
            "import azure.identity, azure.mgmt.security, azure.mgmt.network, azure.mgmt.compute",
        ])
        .output()
        .expect("the venv's python runs");
    assert!(
        imports.status.success(),
        "the venv at {} lacks the SDKs (install tests/emulator/foreign-clients/requirements.txt): {}",
        venv.display(),
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

    let status = run_script(&python, &venv, line.trim());
    drop(emulator.stdin.take());
    let _ = emulator.wait();
    assert!(status, "a foreign client failed (see its output above)");
}

/// Runs the check script with a bounded wait; true when it passed.
fn run_script(python: &Path, venv: &Path, info_line: &str) -> bool {
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut script = Command::new(python)
        .arg(SCRIPT)
        .env("JIT_EMULATOR_INFO", info_line)
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
