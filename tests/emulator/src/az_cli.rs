//! A fake Azure CLI (`az`), so the Azure CLI credential path is tested as users run it.
//!
//! `azure_identity`'s `AzureCliCredential` runs
//! `/bin/sh -c "cd /bin && az account get-access-token -o json --scope …"` and parses the
//! JSON it prints. The emulator writes an executable POSIX `sh` script to
//! `<state_dir>/bin/az` that answers that command (and `az account show`) for the world's
//! user, appends every invocation's arguments to `<state_dir>/az-calls.log` (so a test
//! can prove that a warm client spawned no `az`), and fails as the real CLI does
//! ("Please run 'az login'") while the admin API says it is logged out.
//!
//! The script needs nothing beyond `sh` (no curl, no python): the emulator keeps the
//! current token in `<state_dir>/az/token.env`, which the script sources, and mints a new
//! one whenever the current one is within half its lifetime of expiry on the virtual
//! clock (checked on a timer and after every clock change). The file is replaced by
//! rename, so the script never reads half a token. Only the emulator's state dir holds
//! it, as the real CLI keeps its token cache in `~/.azure`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::Timestamp;

use crate::identity::Identity;

/// What the fake `az` signs in as.
#[derive(Debug, Clone)]
pub struct AzAccount {
    /// The tenant id.
    pub tenant_id: String,
    /// The default subscription (`az account show`), if the world has one.
    pub subscription_id: Option<String>,
    /// Its display name.
    pub subscription_name: Option<String>,
    /// The user's UPN, or `None` when the world has no user (then `az` is logged out).
    pub user_name: Option<String>,
    /// The user's index in [`Identity::principals`].
    pub user: Option<usize>,
}

/// The installed fake `az`.
#[derive(Debug)]
pub struct AzCli {
    script: PathBuf,
    data_dir: PathBuf,
    calls_log: PathBuf,
    user: Option<usize>,
    /// Expiry of the token in `token.env`; held while the file is rewritten.
    current_expiry: Mutex<Option<Timestamp>>,
}

impl AzCli {
    /// Writes the script to `<state_dir>/bin/az` and its account data to
    /// `<state_dir>/az/`.
    pub fn install(state_dir: &Path, account: &AzAccount) -> std::io::Result<Self> {
        let bin_dir = state_dir.join("bin");
        let data_dir = state_dir.join("az");
        std::fs::create_dir_all(&bin_dir)?;
        std::fs::create_dir_all(&data_dir)?;
        let calls_log = state_dir.join("az-calls.log");
        let script = bin_dir.join("az");
        write_atomically(
            &script,
            render_script(&data_dir, &calls_log, &account.tenant_id).as_bytes(),
            0o755,
        )?;
        write_atomically(
            &data_dir.join("account.json"),
            render_account(account).as_bytes(),
            0o600,
        )?;
        // `get-access-token` reports the default subscription unless asked for a tenant.
        write_atomically(
            &data_dir.join("subscription"),
            account
                .subscription_id
                .as_deref()
                .unwrap_or_default()
                .as_bytes(),
            0o600,
        )?;
        let az = Self {
            script,
            data_dir,
            calls_log,
            user: account.user,
            current_expiry: Mutex::new(None),
        };
        if account.user.is_none() {
            az.set_logged_in(false)?;
        }
        Ok(az)
    }

    /// The absolute path of the script (`az_cli` in the binary contract).
    pub fn script_path(&self) -> &Path {
        &self.script
    }

    /// Where every invocation's arguments are appended, one line each.
    pub fn calls_log(&self) -> &Path {
        &self.calls_log
    }

    fn logged_out_flag(&self) -> PathBuf {
        self.data_dir.join("logged-out")
    }

    /// Logs the fake CLI in or out. Logging in without a user in the world is refused.
    pub fn set_logged_in(&self, logged_in: bool) -> std::io::Result<()> {
        if logged_in {
            if self.user.is_none() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the world has no user principal for az to sign in as",
                ));
            }
            match std::fs::remove_file(self.logged_out_flag()) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
                _ => Ok(()),
            }
        } else {
            write_atomically(&self.logged_out_flag(), b"", 0o600)
        }
    }

    /// Whether `az` answers with tokens.
    pub fn logged_in(&self) -> bool {
        !self.logged_out_flag().exists()
    }

    /// Every recorded invocation's arguments, oldest first.
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.calls_log)
            .map(|text| text.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Mints a new token for the user when there is none or the current one is within
    /// half its lifetime of expiry (or already expired) on the virtual clock.
    pub fn refresh(&self, identity: &Identity, now: Timestamp) -> std::io::Result<()> {
        let Some(user) = self.user else {
            return Ok(());
        };
        let mut current_expiry = crate::lock::lock(&self.current_expiry);
        let half_life = identity.token_lifetime() / 2;
        let fresh_enough =
            current_expiry.is_some_and(|expiry| expiry.duration_since(now) > half_life);
        if fresh_enough {
            return Ok(());
        }
        let token = identity.issue(user);
        let local_expiry = token
            .expires_on
            .to_zoned_datetime(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string();
        let contents = format!(
            "access_token='{}'\nexpires_on='{}'\nexpires_on_local='{local_expiry}.{:06}'\n",
            token.access_token,
            token.expires_on.as_second(),
            token.expires_on.subsec_microsecond()
        );
        write_atomically(&self.data_dir.join("token.env"), contents.as_bytes(), 0o600)?;
        *current_expiry = Some(token.expires_on);
        tracing::debug!(expires_on = %token.expires_on, "minted a new token for the fake az");
        Ok(())
    }
}

/// Writes a file through a temporary sibling and a rename, so readers see the old or the
/// new contents, never a mix.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let directory = path.parent().unwrap_or(Path::new("."));
    let mut temporary = tempfile::NamedTempFile::new_in(directory)?;
    temporary.write_all(contents)?;
    temporary.as_file().sync_all()?;
    set_mode(temporary.path(), mode)?;
    temporary.persist(path).map_err(|error| error.error)?;
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// Quotes a value for a single-quoted `sh` string.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn render_account(account: &AzAccount) -> String {
    let subscription = account.subscription_id.clone().unwrap_or_default();
    let body = serde_json::json!({
        "environmentName": "AzureCloud",
        "homeTenantId": account.tenant_id,
        "id": subscription,
        "isDefault": true,
        "managedByTenants": [],
        "name": account.subscription_name.clone().unwrap_or_else(|| subscription.clone()),
        "state": "Enabled",
        "tenantId": account.tenant_id,
        "user": {
            "name": account.user_name.clone().unwrap_or_default(),
            "type": "user",
        },
    });
    let mut text = serde_json::to_string_pretty(&body).unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    text
}

fn render_script(data_dir: &Path, calls_log: &Path, tenant_id: &str) -> String {
    let data_dir = shell_quote(&data_dir.to_string_lossy());
    let calls_log = shell_quote(&calls_log.to_string_lossy());
    let tenant_id = shell_quote(tenant_id);
    format!(
        r#"#!/bin/sh
# A fake Azure CLI written by jit-emulator. It answers
#   az account get-access-token -o json [--scope S | --resource R] [--tenant T] [--subscription S]
#   az account show -o json
#   az --version
# for the emulated world's user, from a token the emulator keeps fresh in token.env.
data_dir={data_dir}
calls_log={calls_log}
tenant_id={tenant_id}

printf '%s\n' "$*" >> "$calls_log"

case "$1" in
    --version|version)
        printf 'azure-cli                         2.91.0 (jit-emulator fake)\n'
        exit 0 ;;
esac

if [ -e "$data_dir/logged-out" ]; then
    echo "ERROR: Please run 'az login' to setup account." >&2
    exit 1
fi

command="$1 $2"
[ $# -ge 2 ] && shift 2

scope=''
resource=''
tenant=''
subscription=''
while [ $# -gt 0 ]; do
    case "$1" in
        --scope|--scopes) scope="$2"; shift 2 ;;
        --resource) resource="$2"; shift 2 ;;
        --tenant|-t) tenant="$2"; shift 2 ;;
        --subscription|-s) subscription="$2"; shift 2 ;;
        -o|--output) shift 2 ;;
        --only-show-errors|--debug|--verbose) shift ;;
        *) echo "ERROR: unrecognized arguments: $1" >&2; exit 2 ;;
    esac
done

case "$command" in
    "account get-access-token")
        if [ -n "$scope" ] && [ -n "$resource" ]; then
            echo "ERROR: usage error: --scope and --resource cannot be used together." >&2
            exit 2
        fi
        target="$scope$resource"
        case "$target" in
            ''|https://management.azure.com|https://management.azure.com/|https://management.azure.com/.default|https://management.azure.com//.default|https://management.core.windows.net|https://management.core.windows.net/|https://management.core.windows.net/.default|https://management.core.windows.net//.default) ;;
            *)
                echo "ERROR: AADSTS500011: The resource principal named $target was not found in the tenant named $tenant_id." >&2
                exit 1 ;;
        esac
        if [ -n "$tenant" ] && [ "$tenant" != "$tenant_id" ]; then
            echo "ERROR: AADSTS90002: Tenant '$tenant' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud." >&2
            exit 1
        fi
        if [ ! -r "$data_dir/token.env" ]; then
            echo "ERROR: Please run 'az login' to setup account." >&2
            exit 1
        fi
        . "$data_dir/token.env"
        if [ -z "$subscription" ] && [ -z "$tenant" ]; then
            subscription=$(cat "$data_dir/subscription" 2>/dev/null)
        fi
        printf '{{\n'
        printf '  "accessToken": "%s",\n' "$access_token"
        printf '  "expiresOn": "%s",\n' "$expires_on_local"
        printf '  "expires_on": %s,\n' "$expires_on"
        if [ -n "$subscription" ]; then
            printf '  "subscription": "%s",\n' "$subscription"
        fi
        printf '  "tenant": "%s",\n' "${{tenant:-$tenant_id}}"
        printf '  "tokenType": "Bearer"\n'
        printf '}}\n'
        ;;
    "account show")
        cat "$data_dir/account.json"
        ;;
    *)
        echo "ERROR: '$command' is misspelled or not recognized by the system." >&2
        exit 2 ;;
esac
"#
    )
}
