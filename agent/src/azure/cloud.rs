//! Which Azure we talk to: the public cloud, a sovereign cloud, or custom endpoints.
//!
//! Everything that differs between clouds for `jit` is three strings: the Resource
//! Manager base URL, the Entra ID authority host, and the token scope for ARM. A custom
//! cloud carries them explicitly, which is how Azure Stack, private test environments and
//! the local emulator are reached: the emulator is *just another cloud*, so no code path
//! exists only for tests.
//!
//! Names parse the way the Azure CLI spells them (`az cloud list`): `AzureCloud`,
//! `AzureUSGovernment`, `AzureChinaCloud`, case-insensitively; a few obvious aliases are
//! accepted too.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use url::Url;

/// An Azure cloud: where ARM lives, where tokens come from, and which scope a token needs.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum AzureCloud {
    /// The global Azure cloud (`AzureCloud`).
    #[default]
    Public,
    /// Azure Government (`AzureUSGovernment`).
    UsGovernment,
    /// Azure operated by 21Vianet (`AzureChinaCloud`).
    China,
    /// Explicit endpoints (Azure Stack, a proxy, the local emulator).
    Custom {
        /// ARM base URL, e.g. `https://management.example.test`.
        resource_manager: Url,
        /// Entra ID authority host, e.g. `https://login.example.test`.
        authority_host: Url,
        /// Token audience for ARM; `None` means `{resource_manager}/.default`.
        audience: Option<String>,
    },
}

/// The three endpoints every `jit` call needs, resolved for one cloud.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudEndpoints {
    /// ARM base URL with no trailing slash in its path.
    pub resource_manager: Url,
    /// Entra ID authority host.
    pub authority_host: Url,
    /// The scope to request ARM tokens for (`…/.default`).
    pub token_scope: String,
}

/// A cloud name or custom endpoint that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CloudError {
    /// The name is not one of the clouds `jit` knows.
    #[error(
        "unknown Azure cloud '{0}': use AzureCloud, AzureUSGovernment or AzureChinaCloud, or set custom endpoints (JIT_ARM_ENDPOINT and JIT_AUTHORITY_HOST)"
    )]
    UnknownName(String),
    /// A custom endpoint is not an absolute `https://` URL.
    #[error("{what} '{value}' is not a valid https URL: {reason}")]
    InvalidEndpoint {
        /// Which endpoint (`ARM endpoint`, `authority host`).
        what: &'static str,
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
}

const PUBLIC_ARM: &str = "https://management.azure.com";
const PUBLIC_AUTHORITY: &str = "https://login.microsoftonline.com";
const US_GOV_ARM: &str = "https://management.usgovcloudapi.net";
const US_GOV_AUTHORITY: &str = "https://login.microsoftonline.us";
const CHINA_ARM: &str = "https://management.chinacloudapi.cn";
const CHINA_AUTHORITY: &str = "https://login.chinacloudapi.cn";

impl AzureCloud {
    /// A custom cloud from two endpoint strings, validated: both must be absolute
    /// `https://` URLs (Entra ID and azure_core's bearer policy refuse plain HTTP).
    pub fn custom(
        resource_manager: &str,
        authority_host: &str,
        audience: Option<String>,
    ) -> Result<Self, CloudError> {
        Ok(AzureCloud::Custom {
            resource_manager: parse_https_endpoint("ARM endpoint", resource_manager)?,
            authority_host: parse_https_endpoint("authority host", authority_host)?,
            audience: audience.filter(|value| !value.trim().is_empty()),
        })
    }

    /// The name `az cloud list` uses for this cloud (`Custom` for explicit endpoints).
    pub fn name(&self) -> &'static str {
        match self {
            AzureCloud::Public => "AzureCloud",
            AzureCloud::UsGovernment => "AzureUSGovernment",
            AzureCloud::China => "AzureChinaCloud",
            AzureCloud::Custom { .. } => "Custom",
        }
    }

    /// Resolves the ARM URL, authority host and token scope.
    pub fn endpoints(&self) -> CloudEndpoints {
        match self {
            AzureCloud::Public => well_known(PUBLIC_ARM, PUBLIC_AUTHORITY),
            AzureCloud::UsGovernment => well_known(US_GOV_ARM, US_GOV_AUTHORITY),
            AzureCloud::China => well_known(CHINA_ARM, CHINA_AUTHORITY),
            AzureCloud::Custom {
                resource_manager,
                authority_host,
                audience,
            } => CloudEndpoints {
                resource_manager: resource_manager.clone(),
                authority_host: authority_host.clone(),
                token_scope: scope_for(audience.as_deref().unwrap_or(resource_manager.as_str())),
            },
        }
    }

    /// The azure_core cloud configuration, so azure_identity credentials ask the right
    /// authority. Always `Some` cloud: with none, azure_identity would read
    /// `AZURE_AUTHORITY_HOST` from the process environment behind the caller's back.
    pub fn to_cloud_configuration(&self) -> Arc<CloudConfiguration> {
        let configuration = match self {
            AzureCloud::Public => CloudConfiguration::AzurePublic,
            AzureCloud::UsGovernment => CloudConfiguration::AzureGovernment,
            AzureCloud::China => CloudConfiguration::AzureChina,
            AzureCloud::Custom { authority_host, .. } => {
                let mut custom = CustomConfiguration::default();
                custom.authority_host = trim_trailing_slash(authority_host.as_str()).to_owned();
                CloudConfiguration::Custom(custom)
            }
        };
        Arc::new(configuration)
    }
}

impl FromStr for AzureCloud {
    type Err = CloudError;

    /// Parses a well-known cloud name. Custom clouds have no name; build them with
    /// [`AzureCloud::custom`].
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let folded = name.trim().to_ascii_lowercase();
        match folded.as_str() {
            "azurecloud" | "public" | "azurepubliccloud" => Ok(AzureCloud::Public),
            "azureusgovernment" | "usgovernment" | "usgov" | "azureusgovernmentcloud" => {
                Ok(AzureCloud::UsGovernment)
            }
            "azurechinacloud" | "china" => Ok(AzureCloud::China),
            _ => Err(CloudError::UnknownName(name.trim().to_owned())),
        }
    }
}

impl fmt::Display for AzureCloud {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AzureCloud::Custom {
                resource_manager, ..
            } => write!(formatter, "Custom ({resource_manager})"),
            other => formatter.write_str(other.name()),
        }
    }
}

fn well_known(resource_manager: &'static str, authority_host: &'static str) -> CloudEndpoints {
    CloudEndpoints {
        resource_manager: constant_url(resource_manager),
        authority_host: constant_url(authority_host),
        token_scope: scope_for(resource_manager),
    }
}

/// Parses one of the constant endpoint URLs above (covered by a unit test).
fn constant_url(value: &'static str) -> Url {
    Url::parse(value).expect("well-known cloud endpoints are valid URLs")
}

fn scope_for(audience: &str) -> String {
    let audience = trim_trailing_slash(audience);
    if audience.ends_with("/.default") {
        audience.to_owned()
    } else {
        format!("{audience}/.default")
    }
}

fn trim_trailing_slash(value: &str) -> &str {
    value.trim_end_matches('/')
}

fn parse_https_endpoint(what: &'static str, value: &str) -> Result<Url, CloudError> {
    let invalid = |reason: String| CloudError::InvalidEndpoint {
        what,
        value: value.to_owned(),
        reason,
    };
    let url = Url::parse(value.trim()).map_err(|error| invalid(error.to_string()))?;
    if url.scheme() != "https" {
        return Err(invalid(
            "only https is supported (Entra ID and ARM refuse plain HTTP)".to_owned(),
        ));
    }
    if url.host_str().is_none() {
        return Err(invalid("the URL has no host".to_owned()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "the URL must not have a query or fragment".to_owned(),
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_case_insensitively() {
        assert_eq!("azurecloud".parse(), Ok(AzureCloud::Public));
        assert_eq!("AzureUSGovernment".parse(), Ok(AzureCloud::UsGovernment));
        assert_eq!(" AZURECHINACLOUD ".parse(), Ok(AzureCloud::China));
        assert!(matches!(
            "AzureGermanCloud".parse::<AzureCloud>(),
            Err(CloudError::UnknownName(name)) if name == "AzureGermanCloud"
        ));
    }

    #[test]
    fn sovereign_scopes() {
        for cloud in [
            AzureCloud::Public,
            AzureCloud::UsGovernment,
            AzureCloud::China,
        ] {
            let endpoints = cloud.endpoints();
            assert_eq!(endpoints.resource_manager.scheme(), "https");
            assert_eq!(endpoints.authority_host.scheme(), "https");
        }
        assert_eq!(
            AzureCloud::Public.endpoints().token_scope,
            "https://management.azure.com/.default"
        );
        assert_eq!(
            AzureCloud::UsGovernment.endpoints().token_scope,
            "https://management.usgovcloudapi.net/.default"
        );
        assert_eq!(
            AzureCloud::China.endpoints().token_scope,
            "https://management.chinacloudapi.cn/.default"
        );
    }

    #[test]
    fn custom_scope_defaults_to_resource_manager() {
        let cloud = AzureCloud::custom("https://127.0.0.1:8443/", "https://127.0.0.1:8443", None)
            .expect("valid endpoints");
        assert_eq!(
            cloud.endpoints().token_scope,
            "https://127.0.0.1:8443/.default"
        );
        let cloud = AzureCloud::custom(
            "https://arm.local",
            "https://login.local",
            Some("https://management.core.windows.net/".to_owned()),
        )
        .expect("valid endpoints");
        assert_eq!(
            cloud.endpoints().token_scope,
            "https://management.core.windows.net/.default"
        );
    }

    #[test]
    fn custom_refuses_plain_http() {
        let error = AzureCloud::custom("http://127.0.0.1:1", "https://x", None).unwrap_err();
        assert!(matches!(
            error,
            CloudError::InvalidEndpoint {
                what: "ARM endpoint",
                ..
            }
        ));
    }
}
