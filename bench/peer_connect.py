#!/usr/bin/env python3
"""The JIT request `jit connect` makes, as a script on Microsoft's tools makes it, for
bench/side_by_side.py --peers; not a test.

Usage: peer_connect.py sdk|az-rest

Both find the VM's policy (the subscription's policy list), learn the caller's address
(the "what is my IP" service), request the VM's first port for that address for an hour,
then wait as such scripts do:

- `sdk` (azure-mgmt-security): reads the policy every 2 s until the request's port
  is `Initiated`;
- `az-rest` (the Azure CLI, signed in beforehand): `az rest` for the same calls,
  polling every 2 s as well, then sleeps 3 s "for the rule to apply" (community scripts
  sleep 3 to 45 s).

Prints `{"port", "polls"}`: the port that should now answer, and how often the policy
was read.

Environment: as bench/peer_list.py, plus JIT_BENCH_VM_ID (the VM's resource id) and
JIT_BENCH_MY_IP_URL; `az-rest` also AZURE_CONFIG_DIR (signed in) and JIT_BENCH_AZ (the
az executable).
"""

import datetime
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request

ARM = os.environ["JIT_BENCH_ARM_ENDPOINT"].rstrip("/")
CA = os.environ["REQUESTS_CA_BUNDLE"]
VM_ID = os.environ["JIT_BENCH_VM_ID"]
SUBSCRIPTION = VM_ID.split("/")[2]
API = "api-version=2020-01-01"
POLL_SECONDS = 2


def my_ip():
    context = ssl.create_default_context(cafile=CA)
    with urllib.request.urlopen(os.environ["JIT_BENCH_MY_IP_URL"], context=context) as answer:
        return answer.read().decode().strip()


def port_status(policy, started):
    """The status of our request's port in a policy document (REST names), if listed."""
    for request in reversed(policy.get("properties", {}).get("requests", [])):
        if request.get("startTimeUtc", "") < started:
            continue
        for vm in request.get("virtualMachines", []):
            if vm["id"].lower() == VM_ID.lower():
                return vm["ports"][0]["status"]
    return None


def the_policy(policies):
    for policy in policies:
        for vm in policy["properties"]["virtualMachines"]:
            if vm["id"].lower() == VM_ID.lower():
                return policy, vm["ports"][0]["number"]
    sys.exit(f"no JIT policy covers {VM_ID}")


def initiate_body(port, address):
    end = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    return {"virtualMachines": [{"id": VM_ID, "ports": [{
        "number": port, "allowedSourceAddressPrefix": address,
        "endTimeUtc": end.strftime("%Y-%m-%dT%H:%M:%SZ")}]}]}


def with_sdk():
    from azure.identity import ClientSecretCredential
    from azure.mgmt.security import SecurityCenter

    credential = ClientSecretCredential(
        os.environ["AZURE_TENANT_ID"], os.environ["AZURE_CLIENT_ID"], os.environ["AZURE_CLIENT_SECRET"],
        authority=os.environ["AZURE_AUTHORITY_HOST"], disable_instance_discovery=True, connection_verify=CA,
    )
    security = SecurityCenter(credential, SUBSCRIPTION, base_url=ARM,
                              credential_scopes=["https://management.azure.com/.default"],
                              connection_verify=CA)
    policies = [policy.as_dict(keep_readonly=True) for policy in security.jit_network_access_policies.list()]
    # as_dict uses the SDK's attribute names; the REST names are what the rest reads.
    policies = [{"id": policy["id"], "name": policy["name"], "location": policy["location"],
                 "properties": {"virtualMachines": [{"id": vm["id"], "ports": [{"number": port["number"]}
                                                                                for port in vm["ports"]]}
                                                    for vm in policy["virtual_machines"]]}}
                for policy in policies]
    policy, port = the_policy(policies)
    group = policy["id"].split("/")[4]
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    security.jit_network_access_policies.initiate(group, policy["location"], policy["name"],
                                                  initiate_body(port, my_ip()))
    polls = 0
    while True:
        polls += 1
        current = security.jit_network_access_policies.get(group, policy["location"], policy["name"])
        document = {"properties": {"requests": [
            {"startTimeUtc": request.start_time_utc.strftime("%Y-%m-%dT%H:%M:%S"),
             "virtualMachines": [{"id": vm.id, "ports": [{"status": item.status} for item in vm.ports]}
                                 for vm in request.virtual_machines]}
            for request in current.requests or []]}}
        if port_status(document, started) == "Initiated":
            return port, polls
        time.sleep(POLL_SECONDS)


def with_az_rest():
    az = os.environ["JIT_BENCH_AZ"]

    def rest(method, url, body=None):
        argv = [az, "rest", "--method", method, "--url", url]
        if body is not None:
            argv += ["--body", json.dumps(body)]
        completed = subprocess.run(argv, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            sys.exit(f"az rest {method} {url} failed: {completed.stderr}")
        return json.loads(completed.stdout) if completed.stdout.strip() else None

    policies = rest("get", f"{ARM}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Security/"
                           f"jitNetworkAccessPolicies?{API}")["value"]
    policy, port = the_policy(policies)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    rest("post", f"{ARM}{policy['id']}/initiate?{API}", initiate_body(port, my_ip()))
    polls = 0
    while True:
        polls += 1
        if port_status(rest("get", f"{ARM}{policy['id']}?{API}"), started) == "Initiated":
            break
        time.sleep(POLL_SECONDS)
    time.sleep(3)
    return port, polls


def main():
    mode = sys.argv[1] if len(sys.argv) == 2 else ""
    if mode == "sdk":
        port, polls = with_sdk()
    elif mode == "az-rest":
        port, polls = with_az_rest()
    else:
        sys.exit(__doc__)
    print(json.dumps({"port": port, "polls": polls}))


if __name__ == "__main__":
    main()
