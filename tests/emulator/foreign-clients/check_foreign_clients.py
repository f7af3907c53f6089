"""Drive a running jit-emulator with clients we did not write.

Microsoft's Python SDKs (azure-identity, azure-mgmt-security, azure-mgmt-network,
azure-mgmt-compute) and the Azure CLI must be able to sign in, list JIT policies, create
one, initiate access and see the NSG rules JIT wrote, exactly as they would against Azure.
If they can, the emulator speaks Azure's contract rather than our own reading of it.

They use their default api-versions: the emulator must accept what released clients
send, so a new client release that moves to a newer api-version fails here first.

Input: the emulator's JSON line in JIT_EMULATOR_INFO; JIT_AZ names the `az` to run
(default: the one next to this Python). Exit code 0 when every check passed; each check
prints one line. The Azure CLI part runs with a private AZURE_CONFIG_DIR.
"""

import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import ssl

INFO = json.loads(os.environ["JIT_EMULATOR_INFO"])
ARM = INFO["arm_endpoint"]
CA = INFO["ca_cert"]
TENANT = INFO["tenant_id"]
SUBSCRIPTION = INFO["subscription_ids"][0]
SP_ID = INFO["service_principal"]["client_id"]
SP_SECRET = INFO["service_principal"]["client_secret"]
CLIENT_IP = INFO["client_ip"]
ARM_SCOPE = "https://management.azure.com/.default"


def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}", flush=True)
        sys.exit(1)
    print(f"ok   {name}", flush=True)


def admin(path, method="GET", body=None):
    """Calls the emulator's admin API (stdlib only)."""
    context = ssl.create_default_context(cafile=CA)
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{INFO['admin_endpoint']}/{path}", data=data, method=method,
        headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, context=context) as response:
        return json.loads(response.read() or b"null")


def listener_port(vm_id, logical_port):
    """The loopback port the emulator bound for a VM's logical port."""
    for listener in admin("state")["listeners"]:
        if listener["vm_id"].lower() == vm_id.lower() and listener["logical_port"] == logical_port:
            return listener["port"]
    raise LookupError(f"no listener for {vm_id}:{logical_port}")


def versions():
    """Prints the client versions under test."""
    from importlib.metadata import version
    names = ["azure-identity", "azure-mgmt-security", "azure-mgmt-network", "azure-mgmt-compute"]
    print("clients: " + ", ".join(f"{name} {version(name)}" for name in names), flush=True)


def names(items):
    return sorted(item.name for item in items)


def python_sdk():
    from azure.identity import ClientSecretCredential, ManagedIdentityCredential
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.network import NetworkManagementClient
    from azure.mgmt.security import SecurityCenter
    from azure.mgmt.security import models as security_models

    credential = ClientSecretCredential(
        TENANT, SP_ID, SP_SECRET,
        authority=INFO["authority_host"],
        disable_instance_discovery=True,
        connection_verify=CA,
    )
    token = credential.get_token(ARM_SCOPE)
    check("python: ClientSecretCredential gets a token", bool(token.token))

    common = dict(base_url=ARM, credential_scopes=[ARM_SCOPE], connection_verify=CA)
    security = SecurityCenter(credential, SUBSCRIPTION, **common)
    compute = ComputeManagementClient(credential, SUBSCRIPTION, **common)
    network = NetworkManagementClient(credential, SUBSCRIPTION, **common)

    policies = list(security.jit_network_access_policies.list())
    names = sorted(f"{policy.id.split('/')[4]}/{policy.name}" for policy in policies)
    check("python: list JIT policies of the subscription", len(policies) >= 3, names)

    locations = list(security.locations.list())
    check("python: list Security locations", len(locations) >= 1, locations)

    vm = compute.virtual_machines.get("rg-dev", "dev-01", expand="instanceView")
    check("python: get a VM with its instance view", vm.name == "dev-01", vm.name)
    nic_id = vm.network_profile.network_interfaces[0].id
    nic = network.network_interfaces.get(nic_id.split("/")[4], nic_id.split("/")[-1])
    nsg_id = nic.network_security_group.id
    nsg_group, nsg_name = nsg_id.split("/")[4], nsg_id.split("/")[-1]
    check("python: the VM's NIC names its NSG", bool(nsg_name), nsg_id)

    python_lists(compute, network)
    python_rule_writes(network, nsg_group, nsg_name)
    python_pricing(security)

    port = listener_port(vm.id, 22)
    policy = security_models.JitNetworkAccessPolicy(
        kind="Basic",
        virtual_machines=[security_models.JitNetworkAccessPolicyVirtualMachine(
            id=vm.id,
            ports=[security_models.JitNetworkAccessPortRule(
                number=port, protocol="*", allowed_source_address_prefix="*",
                max_request_access_duration="PT3H")],
        )],
    )
    created = security.jit_network_access_policies.create_or_update(
        "rg-dev", vm.location, "default", policy)
    check("python: create a JIT policy", created.name == "default"
          and created.virtual_machines[0].id.lower() == vm.id.lower(), created)

    rules = list(network.security_rules.list(nsg_group, nsg_name))
    deny = [rule for rule in rules if rule.name.startswith("SecurityCenter-JITRule_")]
    check("python: the policy wrote a JIT deny rule", len(deny) == 1 and deny[0].access == "Deny",
          [rule.name for rule in rules])

    end = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    request = security_models.JitNetworkAccessPolicyInitiateRequest(
        virtual_machines=[security_models.JitNetworkAccessPolicyInitiateVirtualMachine(
            id=vm.id,
            ports=[security_models.JitNetworkAccessPolicyInitiatePort(
                number=port, allowed_source_address_prefix=CLIENT_IP, end_time_utc=end)],
        )],
        justification="foreign client check",
    )
    initiated = security.jit_network_access_policies.initiate("rg-dev", vm.location, "default", request)
    status = initiated.virtual_machines[0].ports[0].status
    check("python: initiate access", status in ("Initiating", "Initiated"), status)

    # Like the portal, poll the policy until the new request leaves Initiating (bounded).
    deadline = time.monotonic() + 60
    while True:
        fetched = security.jit_network_access_policies.get("rg-dev", vm.location, "default")
        newest = fetched.requests[-1] if fetched.requests else None
        statuses = [port.status for machine in (newest.virtual_machines if newest else [])
                    for port in machine.ports]
        if statuses == ["Initiated"]:
            break
        if time.monotonic() > deadline:
            check("python: the request becomes Initiated within 60 s", False, statuses)
        time.sleep(0.5)
    check("python: the request becomes Initiated", True)

    rules = list(network.security_rules.list(nsg_group, nsg_name))
    allow = [rule for rule in rules
             if rule.name.startswith("SecurityCenter-JITRule-") and rule.access == "Allow"]
    check("python: initiate wrote a JIT allow rule for the client IP",
          len(allow) == 1 and allow[0].source_address_prefix == CLIENT_IP,
          [(rule.name, rule.access, rule.source_address_prefix) for rule in rules])

    check("python: the request is in the policy's history", len(fetched.requests) >= 1, fetched.requests)

    identity = admin("managed-identity")
    os.environ["IDENTITY_ENDPOINT"] = identity["identity_endpoint"]
    os.environ["IDENTITY_HEADER"] = identity["identity_header"]
    managed = ManagedIdentityCredential(connection_verify=CA)
    check("python: ManagedIdentityCredential (App Service) gets a token",
          bool(managed.get_token(ARM_SCOPE).token))
    del os.environ["IDENTITY_ENDPOINT"], os.environ["IDENTITY_HEADER"]


def python_lists(compute, network):
    """The list routes, with the SDK's default api-versions and its paging."""
    nics = list(network.network_interfaces.list_all())
    check("python: network_interfaces.list_all()", "api-01-nic" in names(nics) and "dev-01-nic" in names(nics),
          names(nics))
    in_group = list(network.network_interfaces.list("rg-web"))
    check("python: network_interfaces.list(resource group)",
          names(in_group) == ["api-01-nic", "batch-01-nic", "cache-01-nic", "web-01-nic"], names(in_group))
    ips = list(network.public_ip_addresses.list_all())
    check("python: public_ip_addresses.list_all()",
          any(ip.name == "api-01-ip" and ip.ip_address == "127.0.0.1" for ip in ips), names(ips))
    nsgs = list(network.network_security_groups.list_all())
    check("python: network_security_groups.list_all()", "sql-subnet-nsg" in names(nsgs), names(nsgs))
    networks = list(network.virtual_networks.list_all())
    edge = [item for item in networks if item.name == "vnet-edge"]
    check("python: virtual_networks.list_all() with subnets",
          len(edge) == 1 and names(edge[0].subnets) == ["AzureFirewallSubnet", "workload"], names(networks))
    subnets = list(network.subnets.list("rg-edge", "vnet-edge"))
    check("python: subnets.list()", names(subnets) == ["AzureFirewallSubnet", "workload"], names(subnets))
    vms = list(compute.virtual_machines.list_all())
    check("python: virtual_machines.list_all()", "legacy-01" in names(vms), names(vms))
    by_group = list(compute.virtual_machines.list("rg-web"))
    check("python: virtual_machines.list(resource group)",
          names(by_group) == ["api-01", "batch-01", "cache-01", "web-01"], names(by_group))
    by_location = list(compute.virtual_machines.list_by_location("northeurope"))
    check("python: virtual_machines.list_by_location()", names(by_location) == ["sql-01"], names(by_location))


def python_rule_writes(network, nsg_group, nsg_name):
    """A deployment's rule write and delete, through the SDK's long-running pollers."""
    from azure.mgmt.network import models as network_models
    rule = network_models.SecurityRule(
        protocol="Tcp", access="Allow", direction="Inbound", priority=250,
        source_port_range="*", destination_port_range="443",
        source_address_prefix="203.0.113.0/24", destination_address_prefix="*",
        description="foreign client check")
    created = network.security_rules.begin_create_or_update(
        nsg_group, nsg_name, "AllowHttpsFromPartner", rule).result()
    check("python: security_rules.begin_create_or_update()",
          created.name == "AllowHttpsFromPartner" and created.priority == 250, created)
    network.security_rules.begin_delete(nsg_group, nsg_name, "AllowHttpsFromPartner").result()
    left = names(network.security_rules.list(nsg_group, nsg_name))
    check("python: security_rules.begin_delete()", "AllowHttpsFromPartner" not in left, left)


def python_pricing(security):
    """Defender for Servers, whichever api-version this SDK sends for pricings."""
    try:
        pricing = security.pricings.get(f"subscriptions/{SUBSCRIPTION}", "VirtualMachines")
    except TypeError:
        pricing = security.pricings.get("VirtualMachines")
    check("python: pricings.get(VirtualMachines)",
          pricing.pricing_tier == "Standard" and pricing.sub_plan == "P2", pricing)


def azure_cli():
    az = os.environ.get("JIT_AZ") or shutil.which("az", path=os.path.dirname(sys.executable))
    check("cli: az is installed", az is not None and os.access(az, os.X_OK), az)
    version = subprocess.run([az, "version", "--output", "json"], capture_output=True, text=True,
                             timeout=300, env=dict(os.environ, AZURE_CORE_COLLECT_TELEMETRY="false"))
    if version.returncode == 0:
        print(f"clients: azure-cli {json.loads(version.stdout).get('azure-cli')}", flush=True)
    config_dir = tempfile.mkdtemp(prefix="jit-emulator-az-")
    environment = dict(
        os.environ,
        AZURE_CONFIG_DIR=config_dir,
        REQUESTS_CA_BUNDLE=CA,
        AZURE_CORE_INSTANCE_DISCOVERY="false",
        AZURE_CORE_COLLECT_TELEMETRY="false",
        AZURE_CORE_ONLY_SHOW_ERRORS="true",
        AZURE_CORE_NO_COLOR="true",
    )

    def run(*arguments):
        completed = subprocess.run([az, *arguments], env=environment, capture_output=True,
                                   text=True, timeout=300)
        if completed.returncode != 0:
            print(f"FAIL az {' '.join(arguments)}\n{completed.stderr}", flush=True)
            sys.exit(1)
        return json.loads(completed.stdout) if completed.stdout.strip() else None

    run("cloud", "register", "--name", "JitEmulator",
        "--endpoint-resource-manager", f"{ARM}/",
        "--endpoint-active-directory", ARM,
        "--endpoint-active-directory-resource-id", "https://management.core.windows.net/")
    run("cloud", "set", "--name", "JitEmulator")
    check("cli: az cloud register with the emulator's endpoints", True)

    accounts = run("login", "--service-principal", "--username", SP_ID, "--password", SP_SECRET,
                   "--tenant", TENANT, "--output", "json")
    ids = sorted(account["id"] for account in accounts)
    check("cli: az login --service-principal finds the subscriptions",
          ids == sorted(INFO["subscription_ids"]), ids)
    run("account", "set", "--subscription", SUBSCRIPTION)

    policies = run("security", "jit-policy", "list", "--output", "json")
    check("cli: az security jit-policy list", len(policies) >= 3, [policy["name"] for policy in policies])

    vm_id = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-web/providers/"
             "Microsoft.Compute/virtualMachines/cache-01")
    port = listener_port(vm_id, 22)
    policy_url = (f"{ARM}/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-web/providers/"
                  "Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/cli-created")
    body = {"kind": "Basic", "properties": {"virtualMachines": [{
        "id": vm_id,
        "ports": [{"number": port, "protocol": "*", "allowedSourceAddressPrefix": "*",
                   "maxRequestAccessDuration": "PT1H"}]}]}}
    created = run("rest", "--method", "put", "--url", f"{policy_url}?api-version=2020-01-01",
                  "--body", json.dumps(body))
    check("cli: az rest creates a JIT policy", created["name"] == "cli-created", created)

    shown = run("security", "jit-policy", "show", "--resource-group", "rg-web",
                "--location", "westeurope", "--name", "cli-created", "--output", "json")
    check("cli: az security jit-policy show", shown["name"] == "cli-created", shown)

    initiate = {"virtualMachines": [{"id": vm_id, "ports": [{
        "number": port, "duration": "PT30M", "allowedSourceAddressPrefix": CLIENT_IP}]}]}
    request = run("rest", "--method", "post", "--url",
                  f"{policy_url}/initiate?api-version=2020-01-01", "--body", json.dumps(initiate))
    check("cli: az rest initiates access",
          request["virtualMachines"][0]["ports"][0]["status"] in ("Initiating", "Initiated"), request)

    # The allow rule exists once Azure has applied the request (Initiating -> Initiated),
    # so look until it shows up, as a client of the real service must.
    deadline = time.monotonic() + 60
    while True:
        rules = run("network", "nsg", "rule", "list", "--resource-group", "rg-web",
                    "--nsg-name", "cache-01-nsg", "--output", "json")
        names = [(rule["name"], rule["access"]) for rule in rules]
        deny = any(name.startswith("SecurityCenter-JITRule_") and access == "Deny" for name, access in names)
        allow = any(name.startswith("SecurityCenter-JITRule-") and access == "Allow" for name, access in names)
        if (deny and allow) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    check("cli: az network nsg rule list shows the JIT deny and allow rules", deny and allow, names)

    created = run("network", "nsg", "rule", "create", "--resource-group", "rg-web", "--nsg-name",
                  "cache-01-nsg", "--name", "AllowHttps", "--priority", "260", "--access", "Allow",
                  "--protocol", "Tcp", "--destination-port-ranges", "443", "--output", "json")
    check("cli: az network nsg rule create", created["name"] == "AllowHttps", created)
    run("network", "nsg", "rule", "delete", "--resource-group", "rg-web", "--nsg-name", "cache-01-nsg",
        "--name", "AllowHttps")
    rules = run("network", "nsg", "rule", "list", "--resource-group", "rg-web", "--nsg-name",
                "cache-01-nsg", "--output", "json")
    check("cli: az network nsg rule delete", all(rule["name"] != "AllowHttps" for rule in rules),
          [rule["name"] for rule in rules])

    nics = run("network", "nic", "list", "--output", "json")
    check("cli: az network nic list", any(nic["name"] == "api-01-nic" for nic in nics),
          [nic["name"] for nic in nics])
    ips = run("network", "public-ip", "list", "--resource-group", "rg-web", "--output", "json")
    check("cli: az network public-ip list", any(ip["name"] == "api-01-ip" for ip in ips),
          [ip["name"] for ip in ips])
    networks = run("network", "vnet", "list", "--output", "json")
    check("cli: az network vnet list", any(item["name"] == "vnet-edge" for item in networks),
          [item["name"] for item in networks])
    vms = run("vm", "list", "--output", "json")
    check("cli: az vm list", any(vm["name"] == "legacy-01" for vm in vms), [vm["name"] for vm in vms])
    pricing = run("security", "pricing", "show", "--name", "VirtualMachines", "--output", "json")
    check("cli: az security pricing show", pricing["pricingTier"] == "Standard", pricing)
    shutil.rmtree(config_dir, ignore_errors=True)


if __name__ == "__main__":
    versions()
    python_sdk()
    azure_cli()
    print("all foreign-client checks passed", flush=True)
