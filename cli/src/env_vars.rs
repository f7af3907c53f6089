//! Every environment variable `jit` reads, in one place.
//!
//! Settings resolve as: command-line flag > environment variable > config file >
//! default. Nothing outside this module names an environment variable as a string, so
//! this list (and `docs/configuration.md`, which mirrors it) is complete by construction.

/// Path of the configuration file (default: `jit/config.toml` in the user's config dir).
pub const JIT_CONFIG: &str = "JIT_CONFIG";

/// Cloud: `AzureCloud` (default), `AzureUSGovernment`, `AzureChinaCloud`.
pub const JIT_CLOUD: &str = "JIT_CLOUD";

/// Azure Resource Manager endpoint of a custom cloud (for example an Azure Stack hub or
/// the `jit-emulator`); implies a custom cloud.
pub const JIT_ARM_ENDPOINT: &str = "JIT_ARM_ENDPOINT";

/// Entra ID authority host of a custom cloud.
pub const JIT_AUTHORITY_HOST: &str = "JIT_AUTHORITY_HOST";

/// PEM file of extra trusted CA certificates (a TLS-inspecting proxy, the emulator).
pub const JIT_CA_FILE: &str = "JIT_CA_FILE";

/// How to sign in: `auto`, `cli`, `service-principal`, `managed-identity`,
/// `workload-identity`.
pub const JIT_AUTH: &str = "JIT_AUTH";

/// Entra ID tenant to sign in to.
pub const JIT_TENANT: &str = "JIT_TENANT";

/// How long one `az account get-access-token` may run before it is stopped (default
/// `30s`).
pub const JIT_AZ_TIMEOUT: &str = "JIT_AZ_TIMEOUT";

/// Comma-separated subscription ids (or names) that `jit` searches by default.
pub const JIT_SUBSCRIPTIONS: &str = "JIT_SUBSCRIPTIONS";

/// Comma-separated HTTPS URLs of "what is my IP" services, asked in parallel.
pub const JIT_MY_IP_URLS: &str = "JIT_MY_IP_URLS";

/// Default output format: `table` or `json`.
pub const JIT_OUTPUT: &str = "JIT_OUTPUT";

/// Directory for the agent's state file and logs.
pub const JIT_STATE_DIR: &str = "JIT_STATE_DIR";

/// Directory for the agent's socket.
pub const JIT_RUNTIME_DIR: &str = "JIT_RUNTIME_DIR";

/// Set to `1` to neither start nor use the background agent.
pub const JIT_NO_AGENT: &str = "JIT_NO_AGENT";

/// Set to `1` to run the agent without its tray icon.
pub const JIT_NO_TRAY: &str = "JIT_NO_TRAY";

/// Log filter (`tracing` env-filter syntax, for example `jit=debug`); overrides `-v`.
pub const JIT_LOG: &str = "JIT_LOG";

/// Disables colours when set to any non-empty value (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";

/// Service principal or user-assigned managed identity client id (Azure SDK convention).
pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";

/// Tenant of the service principal (Azure SDK convention).
pub const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";

/// Service principal secret (Azure SDK convention). Prefer `jit auth set-secret`.
pub const AZURE_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";

/// Federated token file for workload identity (Azure SDK convention).
pub const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";

/// Managed identity endpoint (App Service, Container Apps, Functions).
pub const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";

/// Managed identity header secret that goes with [`IDENTITY_ENDPOINT`].
pub const IDENTITY_HEADER: &str = "IDENTITY_HEADER";

/// Where the Azure CLI keeps its sign-in (default `~/.azure`); read to tell which
/// account `az` is signed in to, never written.
pub const AZURE_CONFIG_DIR: &str = "AZURE_CONFIG_DIR";

/// Every variable above, with its one-line description, for `jit config show` and docs.
pub const ALL: &[(&str, &str)] = &[
    (JIT_CONFIG, "path of the configuration file"),
    (
        JIT_CLOUD,
        "AzureCloud, AzureUSGovernment or AzureChinaCloud",
    ),
    (
        JIT_ARM_ENDPOINT,
        "Azure Resource Manager endpoint of a custom cloud",
    ),
    (
        JIT_AUTHORITY_HOST,
        "Entra ID authority host of a custom cloud",
    ),
    (JIT_CA_FILE, "PEM file of extra trusted CA certificates"),
    (
        JIT_AUTH,
        "auto, cli, service-principal, managed-identity or workload-identity",
    ),
    (JIT_TENANT, "Entra ID tenant to sign in to"),
    (
        JIT_AZ_TIMEOUT,
        "how long one az token call may run (default 30s)",
    ),
    (
        JIT_SUBSCRIPTIONS,
        "comma-separated subscriptions searched by default",
    ),
    (
        JIT_MY_IP_URLS,
        "comma-separated \"what is my IP\" HTTPS URLs",
    ),
    (JIT_OUTPUT, "default output format: table or json"),
    (JIT_STATE_DIR, "directory for the agent's state and logs"),
    (JIT_RUNTIME_DIR, "directory for the agent's socket"),
    (
        JIT_NO_AGENT,
        "1 to neither start nor use the background agent",
    ),
    (JIT_NO_TRAY, "1 to run the agent without its tray icon"),
    (JIT_LOG, "log filter, for example jit=debug"),
    (NO_COLOR, "disable colours"),
    (
        AZURE_CLIENT_ID,
        "service principal or managed identity client id",
    ),
    (AZURE_TENANT_ID, "service principal tenant"),
    (AZURE_CLIENT_SECRET, "service principal secret"),
    (
        AZURE_FEDERATED_TOKEN_FILE,
        "workload identity federated token file",
    ),
    (IDENTITY_ENDPOINT, "managed identity endpoint"),
    (IDENTITY_HEADER, "managed identity header secret"),
    (
        AZURE_CONFIG_DIR,
        "the Azure CLI's directory, to tell which account az is signed in to",
    ),
];
