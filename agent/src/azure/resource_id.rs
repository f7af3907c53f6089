//! ARM resource ids: parse, take apart, compare.
//!
//! An id is `/subscriptions/{sub}[/resourceGroups/{rg}][/providers/{namespace}/{type}/{name}[/{type}/{name}]…]`.
//! ARM treats ids case-insensitively and returns them in varying case (`resourceGroups`
//! vs `resourcegroups`, `myRG` vs `MYRG`), so equality and hashing here fold ASCII case;
//! the text is kept as given for display and for building URLs.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A parsed ARM resource id.
#[derive(Clone)]
pub struct ResourceId {
    text: String,
    subscription_id: String,
    resource_group: Option<String>,
    provider: Option<String>,
    /// `(type, name)` pairs below the provider, outermost first.
    resources: Vec<(String, String)>,
}

/// A string that is not an ARM resource id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "'{id}' is not an Azure resource id ({reason}); expected /subscriptions/<id>/resourceGroups/<group>/providers/<namespace>/<type>/<name>"
)]
pub struct ResourceIdError {
    /// The text.
    pub id: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl ResourceId {
    /// Parses an id. A trailing `/` is ignored; empty segments are refused.
    pub fn parse(id: &str) -> Result<Self, ResourceIdError> {
        let error = |reason| ResourceIdError {
            id: id.to_owned(),
            reason,
        };
        // Whitespace and trailing slashes in any order ("/…/x / "), so that the text
        // kept parses again to itself.
        let text = id
            .trim_start()
            .trim_end_matches(|character: char| character.is_whitespace() || character == '/');
        let Some(relative) = text.strip_prefix('/') else {
            return Err(error("it does not start with '/'"));
        };
        let segments: Vec<&str> = relative.split('/').collect();
        if segments.iter().any(|segment| segment.trim().is_empty()) {
            return Err(error("it has an empty segment"));
        }
        // ARM names never start or end with whitespace nor hold control characters;
        // refusing them keeps every part of an id (a parent, a name) parseable as it is.
        if segments.iter().any(|segment| segment.trim() != *segment) {
            return Err(error("a segment starts or ends with a space"));
        }
        if text.chars().any(char::is_control) {
            return Err(error("it holds a control character"));
        }
        let mut rest = segments.as_slice();
        let subscription_id = match rest {
            [key, value, tail @ ..] if key.eq_ignore_ascii_case("subscriptions") => {
                rest = tail;
                (*value).to_owned()
            }
            _ => return Err(error("it does not start with /subscriptions/<id>")),
        };
        let mut resource_group = None;
        if let [key, value, tail @ ..] = rest
            && key.eq_ignore_ascii_case("resourceGroups")
        {
            resource_group = Some((*value).to_owned());
            rest = tail;
        }
        let mut provider = None;
        let mut resources = Vec::new();
        match rest {
            [] => {}
            [key, namespace, tail @ ..] if key.eq_ignore_ascii_case("providers") => {
                if tail.is_empty() || tail.len() % 2 != 0 {
                    return Err(error("the resource types and names do not pair up"));
                }
                provider = Some((*namespace).to_owned());
                resources = tail
                    .chunks_exact(2)
                    .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
                    .collect();
            }
            _ => return Err(error("'providers' is missing before the resource type")),
        }
        Ok(Self {
            text: text.to_owned(),
            subscription_id,
            resource_group,
            provider,
            resources,
        })
    }

    /// Builds the id of a resource in a resource group:
    /// `/subscriptions/{s}/resourceGroups/{g}/providers/{namespace}/{type}/{name}…`.
    /// `types_and_names` alternate type and name (`["virtualMachines", "vm1"]`).
    pub fn in_resource_group(
        subscription_id: &str,
        resource_group: &str,
        namespace: &str,
        types_and_names: &[&str],
    ) -> Result<Self, ResourceIdError> {
        let mut text = format!(
            "/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/{namespace}"
        );
        for part in types_and_names {
            text.push('/');
            text.push_str(part);
        }
        Self::parse(&text)
    }

    /// The id of a VM.
    pub fn virtual_machine(
        subscription_id: &str,
        resource_group: &str,
        name: &str,
    ) -> Result<Self, ResourceIdError> {
        if [subscription_id, resource_group, name]
            .iter()
            .any(|part| part.contains('/'))
        {
            return Err(ResourceIdError {
                id: format!("{subscription_id}/{resource_group}/{name}"),
                reason: "a name contains '/'",
            });
        }
        Self::in_resource_group(
            subscription_id,
            resource_group,
            "Microsoft.Compute",
            &["virtualMachines", name],
        )
    }

    /// The id as given (without a trailing `/`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The subscription id.
    pub fn subscription_id(&self) -> &str {
        &self.subscription_id
    }

    /// The resource group, if the id is inside one.
    pub fn resource_group(&self) -> Option<&str> {
        self.resource_group.as_deref()
    }

    /// The provider namespace (`Microsoft.Compute`).
    pub fn provider(&self) -> Option<&str> {
        self.provider.as_deref()
    }

    /// The full type (`Microsoft.Compute/virtualMachines`,
    /// `Microsoft.Network/virtualNetworks/subnets`).
    pub fn resource_type(&self) -> Option<String> {
        let provider = self.provider.as_deref()?;
        let mut full = provider.to_owned();
        for (resource_type, _) in &self.resources {
            full.push('/');
            full.push_str(resource_type);
        }
        Some(full)
    }

    /// The resource's own name (the last name in the id).
    pub fn name(&self) -> Option<&str> {
        self.resources.last().map(|(_, name)| name.as_str())
    }

    /// `(type, name)` pairs below the provider, outermost first
    /// (`[("virtualNetworks", "vnet"), ("subnets", "default")]`).
    pub fn types_and_names(&self) -> &[(String, String)] {
        &self.resources
    }

    /// The name that goes with a type segment (`location` of a JIT policy id is
    /// `name_of("locations")`).
    pub fn name_of(&self, resource_type: &str) -> Option<&str> {
        self.resources
            .iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(resource_type))
            .map(|(_, name)| name.as_str())
    }

    /// `true` when the full type equals `full_type`, ignoring case.
    pub fn is_type(&self, full_type: &str) -> bool {
        self.resource_type()
            .is_some_and(|own| own.eq_ignore_ascii_case(full_type))
    }

    /// The enclosing resource (`…/virtualNetworks/vnet` for a subnet), if nested.
    pub fn parent(&self) -> Option<ResourceId> {
        if self.resources.len() < 2 {
            return None;
        }
        let mut parent = self.clone();
        parent.resources.pop();
        let mut text = format!("/subscriptions/{}", parent.subscription_id);
        if let Some(group) = &parent.resource_group {
            text.push_str("/resourceGroups/");
            text.push_str(group);
        }
        if let Some(provider) = &parent.provider {
            text.push_str("/providers/");
            text.push_str(provider);
        }
        for (resource_type, name) in &parent.resources {
            text.push('/');
            text.push_str(resource_type);
            text.push('/');
            text.push_str(name);
        }
        parent.text = text;
        Some(parent)
    }
}

/// Compares two id strings the way ARM does (ASCII case-insensitive, trailing `/`
/// ignored), without requiring either to parse.
pub fn same_resource_id(left: &str, right: &str) -> bool {
    left.trim()
        .trim_end_matches('/')
        .eq_ignore_ascii_case(right.trim().trim_end_matches('/'))
}

impl PartialEq for ResourceId {
    fn eq(&self, other: &Self) -> bool {
        self.text.eq_ignore_ascii_case(&other.text)
    }
}

impl Eq for ResourceId {}

impl Hash for ResourceId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for byte in self.text.bytes() {
            state.write_u8(byte.to_ascii_lowercase());
        }
        state.write_u8(0xff);
    }
}

impl fmt::Debug for ResourceId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_tuple("ResourceId")
            .field(&self.text)
            .finish()
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.text)
    }
}

impl FromStr for ResourceId {
    type Err = ResourceIdError;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        Self::parse(id)
    }
}

impl Serialize for ResourceId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for ResourceId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        ResourceId::parse(&text).map_err(serde::de::Error::custom)
    }
}
