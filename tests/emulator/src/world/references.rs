//! How the world file names resources: a name in the same resource group, `vnet/subnet`
//! for subnets, or a full ARM id in the same subscription, resolved to the lower-case ARM
//! id the state is keyed by.

pub(crate) const VIRTUAL_NETWORKS: &str = "microsoft.network/virtualnetworks";
pub(crate) const NSGS: &str = "microsoft.network/networksecuritygroups";
pub(crate) const PUBLIC_IPS: &str = "microsoft.network/publicipaddresses";
pub(crate) const FIREWALLS: &str = "microsoft.network/azurefirewalls";
pub(crate) const NICS: &str = "microsoft.network/networkinterfaces";
pub(crate) const VMS: &str = "microsoft.compute/virtualmachines";
pub(crate) const CLASSIC_VMS: &str = "microsoft.classiccompute/virtualmachines";
pub(crate) const SUBNETS: &str = "microsoft.network/virtualnetworks/subnets";

/// Resolves a reference in the world file (a name in the same resource group, or a full
/// ARM id in the same subscription) to the lower-case ARM id of a top-level resource of
/// `provider_type` (`microsoft.network/networksecuritygroups`).
pub(crate) fn reference_key(
    reference: &str,
    subscription_id: &str,
    resource_group: &str,
    provider_type: &str,
) -> Option<String> {
    let (group, name) = if reference.starts_with('/') {
        let parsed = crate::state::ids::ResourceId::parse(reference)?;
        if !parsed.subscription_id.eq_ignore_ascii_case(subscription_id)
            || !parsed.provider_type().eq_ignore_ascii_case(provider_type)
            || parsed.names.len() != 1
        {
            return None;
        }
        (parsed.resource_group, parsed.names[0].clone())
    } else if reference.is_empty() || reference.contains('/') {
        return None;
    } else {
        (resource_group.to_owned(), reference.to_owned())
    };
    Some(arm_key(subscription_id, &group, provider_type, &name))
}

/// Resolves a subnet reference (`"vnet/subnet"` in the same resource group, or a full
/// subnet id in the same subscription) to the lower-case subnet id.
pub(crate) fn subnet_reference_key(
    reference: &str,
    subscription_id: &str,
    resource_group: &str,
) -> Option<String> {
    let (group, network, subnet) = if reference.starts_with('/') {
        let parsed = crate::state::ids::ResourceId::parse(reference)?;
        if !parsed.subscription_id.eq_ignore_ascii_case(subscription_id)
            || !parsed.provider_type().eq_ignore_ascii_case(SUBNETS)
        {
            return None;
        }
        let [network, subnet] = parsed.names.as_slice() else {
            return None;
        };
        (
            parsed.resource_group.clone(),
            network.clone(),
            subnet.clone(),
        )
    } else {
        let (network, subnet) = reference.split_once('/')?;
        if network.is_empty() || subnet.is_empty() || subnet.contains('/') {
            return None;
        }
        (
            resource_group.to_owned(),
            network.to_owned(),
            subnet.to_owned(),
        )
    };
    Some(format!(
        "{}/subnets/{}",
        arm_key(subscription_id, &group, VIRTUAL_NETWORKS, &network),
        subnet.to_ascii_lowercase()
    ))
}

/// The lower-case ARM id of a top-level resource: how the emulator keys its state.
pub(crate) fn arm_key(
    subscription_id: &str,
    group: &str,
    provider_type: &str,
    name: &str,
) -> String {
    format!(
        "/subscriptions/{subscription_id}/resourcegroups/{group}/providers/{provider_type}/{name}"
    )
    .to_ascii_lowercase()
}
