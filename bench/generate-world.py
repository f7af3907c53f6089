#!/usr/bin/env python3
"""Writes an emulator world with many VMs, for `bench/run`.

Usage: generate-world.py SUBSCRIPTIONS GROUPS_PER_SUBSCRIPTION VMS_PER_GROUP > world.toml

Every group gets one VNet, one NSG per VM, a public IP per VM, and a JIT policy holding
every other VM (so the listing has Configured and Not configured VMs in equal measure).
"""
import sys
import uuid

subscriptions, groups, vms = (int(argument) for argument in sys.argv[1:4])
out = sys.stdout.write
out('tenant_id = "11111111-2222-4333-8444-555555555555"\n')
out('security_home_region = "centralus"\n\n')
out('[[principals]]\nkind = "user"\nname = "bench@contoso.com"\n'
    'object_id = "66666666-7777-4888-9999-000000000000"\nactions = ["*"]\n\n')
out('[[principals]]\nkind = "service_principal"\nname = "bench-sp"\n'
    'client_id = "0b5e1c7a-2d4f-4f83-9a6e-5c1d7e2f8a90"\n'
    'object_id = "4c8e2a1f-6b3d-4a5e-8f7c-1d9e0a2b3c4d"\nactions = ["*"]\n\n')
for s in range(subscriptions):
    out(f'[[subscriptions]]\nid = "{uuid.UUID(int=s + 1, version=4)}"\n'
        f'display_name = "Bench {s}"\n\n')
    for g in range(groups):
        out(f'[[subscriptions.resource_groups]]\nname = "rg-{g:03}"\nlocation = "westeurope"\n\n')
        out('[[subscriptions.resource_groups.virtual_networks]]\nname = "vnet"\n'
            'address_space = ["10.0.0.0/16"]\n'
            'subnets = [{ name = "default", address_prefix = "10.0.0.0/24" }]\n\n')
        for v in range(vms):
            name = f"vm-{s}-{g:03}-{v:03}"
            out(f'[[subscriptions.resource_groups.network_security_groups]]\nname = "{name}-nsg"\n\n')
            out(f'[[subscriptions.resource_groups.public_ip_addresses]]\nname = "{name}-ip"\n\n')
            out(f'[[subscriptions.resource_groups.network_interfaces]]\nname = "{name}-nic"\n'
                f'private_ip_address = "10.0.0.{v + 4}"\nsubnet = "vnet/default"\n'
                f'public_ip_address = "{name}-ip"\nnetwork_security_group = "{name}-nsg"\n\n')
            out(f'[[subscriptions.resource_groups.virtual_machines]]\nname = "{name}"\nos = "Linux"\n'
                f'network_interfaces = ["{name}-nic"]\nports = [{{ service = "ssh", number = 22 }}]\n\n')
        out('[[subscriptions.resource_groups.jit_policies]]\nname = "default"\nlocation = "westeurope"\n\n')
        for v in range(0, vms, 2):
            name = f"vm-{s}-{g:03}-{v:03}"
            out('[[subscriptions.resource_groups.jit_policies.virtual_machines]]\n'
                f'virtual_machine = "{name}"\n'
                'ports = [{ service = "ssh", protocol = "*", allowed_source_address_prefix = "*", '
                'max_request_access_duration = "PT3H" }]\n\n')
