//! ARM resource ids: parsing and comparing them as ARM does (case-insensitively).
//!
//! ARM ids are `/subscriptions/{id}/resourceGroups/{group}/providers/{Namespace}/{type}/{name}`
//! with optional `/{childType}/{childName}` pairs. Clients change their casing freely, so
//! the emulator keys its state by the lower-cased id and keeps the world's casing for
//! display.

/// A parsed resource id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceId {
    /// The subscription id, as written.
    pub subscription_id: String,
    /// The resource group, as written.
    pub resource_group: String,
    /// The provider namespace (`Microsoft.Compute`), as written.
    pub namespace: String,
    /// The resource type and child types (`virtualMachines`, or `virtualNetworks`,
    /// `subnets`), as written.
    pub types: Vec<String>,
    /// The names matching `types`, as written.
    pub names: Vec<String>,
}

impl ResourceId {
    /// Parses a resource-group-scoped resource id; `None` when it is not one.
    pub fn parse(id: &str) -> Option<Self> {
        let segments: Vec<&str> = id.strip_prefix('/')?.split('/').collect();
        let [
            subscriptions,
            subscription_id,
            groups,
            resource_group,
            providers,
            namespace,
            rest @ ..,
        ] = segments.as_slice()
        else {
            return None;
        };
        if !subscriptions.eq_ignore_ascii_case("subscriptions")
            || !groups.eq_ignore_ascii_case("resourceGroups")
            || !providers.eq_ignore_ascii_case("providers")
            || rest.is_empty()
            || rest.len() % 2 != 0
            || segments.iter().any(|segment| segment.is_empty())
        {
            return None;
        }
        let (types, names) = rest
            .chunks(2)
            .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
            .unzip();
        Some(Self {
            subscription_id: (*subscription_id).to_owned(),
            resource_group: (*resource_group).to_owned(),
            namespace: (*namespace).to_owned(),
            types,
            names,
        })
    }

    /// `Namespace/type[/childType]`, as written.
    pub fn provider_type(&self) -> String {
        let mut provider_type = self.namespace.clone();
        for resource_type in &self.types {
            provider_type.push('/');
            provider_type.push_str(resource_type);
        }
        provider_type
    }

    /// The lower-cased id: the key the state uses.
    pub fn key(&self) -> String {
        key(&self.to_string())
    }
}

impl std::fmt::Display for ResourceId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "/subscriptions/{}/resourceGroups/{}/providers/{}",
            self.subscription_id, self.resource_group, self.namespace
        )?;
        for (resource_type, name) in self.types.iter().zip(&self.names) {
            write!(formatter, "/{resource_type}/{name}")?;
        }
        Ok(())
    }
}

/// The key of an id in the state: the id lower-cased, as ARM compares ids.
pub fn key(id: &str) -> String {
    id.trim_end_matches('/').to_ascii_lowercase()
}

/// The id of a resource group.
pub fn resource_group_id(subscription_id: &str, resource_group: &str) -> String {
    format!("/subscriptions/{subscription_id}/resourceGroups/{resource_group}")
}

/// The id of a top-level resource.
pub fn resource_id(
    subscription_id: &str,
    resource_group: &str,
    provider_type: &str,
    name: &str,
) -> String {
    format!(
        "{}/providers/{provider_type}/{name}",
        resource_group_id(subscription_id, resource_group)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vm_id_parses_in_any_casing() {
        let parsed = ResourceId::parse(
            "/SUBSCRIPTIONS/abc/resourcegroups/RG-Web/Providers/Microsoft.Compute/virtualMachines/api-01",
        );
        let Some(parsed) = parsed else {
            panic!("did not parse");
        };
        assert_eq!(parsed.subscription_id, "abc");
        assert_eq!(parsed.resource_group, "RG-Web");
        assert_eq!(parsed.provider_type(), "Microsoft.Compute/virtualMachines");
        assert_eq!(parsed.names, ["api-01"]);
        assert_eq!(
            parsed.key(),
            "/subscriptions/abc/resourcegroups/rg-web/providers/microsoft.compute/virtualmachines/api-01"
        );
    }

    #[test]
    fn a_subnet_id_has_two_names() {
        let parsed = ResourceId::parse(
            "/subscriptions/abc/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/subnets/s",
        );
        assert_eq!(
            parsed.map(|id| id.names),
            Some(vec!["v".to_owned(), "s".to_owned()])
        );
    }

    #[test]
    fn malformed_ids_do_not_parse() {
        for id in [
            "",
            "/subscriptions//resourceGroups/g/providers/Microsoft.Compute/virtualMachines/v",
            "/subscriptions/abc/resourceGroups/g/providers/Microsoft.Compute/virtualMachines",
            "/subscriptions/abc/resourceGroups/g",
            "subscriptions/abc/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/v",
        ] {
            assert_eq!(ResourceId::parse(id), None, "{id}");
        }
    }
}
