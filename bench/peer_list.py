#!/usr/bin/env python3
"""What a Python script on Microsoft's SDKs does to list what `jit list` shows: every VM
of every subscription with its power state, OS, addresses and whether a JIT policy
covers it (and with which ports). For bench/side_by_side.py --peers; not a test.

Per subscription, as the SDKs' documentation shows it: the JIT policies
(`azure-mgmt-security`), the VMs with their instance view (`virtual_machines.list_all(
status_only="true")`, `azure-mgmt-compute`), the NICs and public IPs
(`azure-mgmt-network`). Prints the VMs as a JSON array.

Environment: AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_AUTHORITY_HOST
(a service principal and where to sign in), JIT_BENCH_ARM_ENDPOINT (the ARM endpoint),
JIT_BENCH_SUBSCRIPTIONS (comma-separated ids), REQUESTS_CA_BUNDLE (the CA to trust).
"""

import json
import os

from azure.identity import ClientSecretCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.security import SecurityCenter

ARM = os.environ["JIT_BENCH_ARM_ENDPOINT"].rstrip("/")
SCOPE = "https://management.azure.com/.default"
CA = os.environ["REQUESTS_CA_BUNDLE"]


def main():
    credential = ClientSecretCredential(
        os.environ["AZURE_TENANT_ID"], os.environ["AZURE_CLIENT_ID"], os.environ["AZURE_CLIENT_SECRET"],
        authority=os.environ["AZURE_AUTHORITY_HOST"], disable_instance_discovery=True, connection_verify=CA,
    )
    common = dict(base_url=ARM, credential_scopes=[SCOPE], connection_verify=CA)
    listed = []
    for subscription in os.environ["JIT_BENCH_SUBSCRIPTIONS"].split(","):
        security = SecurityCenter(credential, subscription, **common)
        compute = ComputeManagementClient(credential, subscription, **common)
        network = NetworkManagementClient(credential, subscription, **common)
        covered = {}
        for policy in security.jit_network_access_policies.list():
            for vm in policy.virtual_machines:
                covered[vm.id.lower()] = [port.number for port in vm.ports]
        addresses = {ip.id.lower(): ip.ip_address for ip in network.public_ip_addresses.list_all()}
        nics = {}
        for nic in network.network_interfaces.list_all():
            configuration = nic.ip_configurations[0] if nic.ip_configurations else None
            public = configuration.public_ip_address.id.lower() \
                if configuration is not None and configuration.public_ip_address else None
            nics[nic.id.lower()] = (configuration.private_ip_address if configuration else None,
                                    addresses.get(public))
        for vm in compute.virtual_machines.list_all(status_only="true"):
            power = next((status.code.split("/", 1)[1] for status in (vm.instance_view.statuses or [])
                          if status.code.startswith("PowerState/")), None) if vm.instance_view else None
            interfaces = vm.network_profile.network_interfaces if vm.network_profile else []
            private, public = nics.get(interfaces[0].id.lower(), (None, None)) if interfaces else (None, None)
            listed.append({
                "name": vm.name,
                "resource_group": vm.id.split("/")[4],
                "subscription_id": subscription,
                "power_state": power,
                "os": vm.storage_profile.os_disk.os_type if vm.storage_profile else None,
                "private_ip": private,
                "public_ip": public,
                "jit_ports": covered.get(vm.id.lower()),
            })
    print(json.dumps(listed))


if __name__ == "__main__":
    main()
