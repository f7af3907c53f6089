#!/usr/bin/env python3
"""Measures the emulator itself at scale, for `bench/run` and for its own figures.

Usage: bench/emulator.py BINARY [SUBSCRIPTIONS GROUPS VMS] [--rounds N]

Starts BINARY (a jit-emulator) with a world from generate-world.py (default 10 20 25:
5,000 VMs in 10 subscriptions), then, as a client would over HTTPS: Resource Graph
queries (a VM by name; the portal-style query joining a VM to its NICs and public IPs;
every VM), JIT policy lists per subscription, VM and policy GETs. It prints the client's
latency percentiles next to the emulator's own (`GET /_emulator/stats`, reset before each
kind of call) and the emulator's resident memory (now and peak). Python standard library
only.
"""

import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
GRAPH = "/providers/Microsoft.ResourceGraph/resources?api-version=2024-04-01"
PORTAL_QUERY = """resources
| where type =~ 'microsoft.compute/virtualmachines' and name =~ '{name}'
| extend powerState = tostring(properties.extended.instanceView.powerState.code)
| mv-expand nic = properties.networkProfile.networkInterfaces
| extend nicId = tolower(tostring(nic.id))
| join kind=leftouter (
    resources
    | where type =~ 'microsoft.network/networkinterfaces'
    | mv-expand ipConfiguration = properties.ipConfigurations
    | project nicId = tolower(id), privateIp = tostring(ipConfiguration.properties.privateIPAddress),
              publicIpId = tolower(tostring(ipConfiguration.properties.publicIPAddress.id)),
              subnetId = tolower(tostring(ipConfiguration.properties.subnet.id)),
              nicNsgId = tolower(tostring(properties.networkSecurityGroup.id))
  ) on nicId
| join kind=leftouter (resources | where type =~ 'microsoft.network/publicipaddresses'
    | project publicIpId = tolower(id), publicIp = tostring(properties.ipAddress)) on publicIpId
| project id, name, resourceGroup, subscriptionId, location, powerState, nicId, privateIp, publicIp, subnetId, nicNsgId"""


def memory(pid):
    """(VmRSS, VmHWM) of a process in MiB, from /proc (Linux)."""
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def percentiles(samples):
    ordered = sorted(samples)
    pick = lambda fraction: ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
    return f"p50 {pick(0.5):6.1f} ms  p90 {pick(0.9):6.1f} ms  max {ordered[-1]:6.1f} ms"


class Client:
    def __init__(self, info):
        self.info = info
        self.context = ssl.create_default_context(cafile=info["ca_cert"])
        form = urllib.parse.urlencode({
            "grant_type": "client_credentials",
            "client_id": info["service_principal"]["client_id"],
            "client_secret": info["service_principal"]["client_secret"],
            "scope": "https://management.azure.com/.default",
        }).encode()
        token = self.call("POST", f"{info['authority_host']}/{info['tenant_id']}/oauth2/v2.0/token", form,
                          {"content-type": "application/x-www-form-urlencoded"})
        self.token = token["access_token"]

    def call(self, method, url, data=None, headers=None):
        request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        with urllib.request.urlopen(request, context=self.context) as response:
            body = response.read()
        return json.loads(body) if body else None

    def arm(self, method, path, body=None):
        headers = {"authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            headers["content-type"] = "application/json"
            data = json.dumps(body).encode()
        started = time.perf_counter()
        answer = self.call(method, self.info["arm_endpoint"] + path, data, headers)
        return answer, (time.perf_counter() - started) * 1000


def main():
    arguments = [argument for argument in sys.argv[1:] if not argument.startswith("--")]
    rounds = 20
    if "--rounds" in sys.argv:
        rounds = int(sys.argv[sys.argv.index("--rounds") + 1])
        arguments.remove(str(rounds))
    if not arguments:
        sys.exit(__doc__)
    binary = arguments[0]
    shape = [int(value) for value in arguments[1:4]] or [10, 20, 25]
    with tempfile.TemporaryDirectory(prefix="jit-emulator-bench-") as work:
        world = os.path.join(work, "world.toml")
        with open(world, "w", encoding="utf-8") as out:
            subprocess.run([sys.executable, os.path.join(HERE, "generate-world.py"), *map(str, shape)],
                           stdout=out, check=True)
        started = time.perf_counter()
        emulator = subprocess.Popen([binary, "--world", world, "--state-dir", os.path.join(work, "state")],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        info = json.loads(emulator.stdout.readline())
        vms = shape[0] * shape[1] * shape[2]
        print(f"emulator with {vms} VMs in {shape[0]} subscriptions: ready in "
              f"{(time.perf_counter() - started):.1f} s, {memory(emulator.pid)[0]:.0f} MiB resident")
        try:
            run(info, shape, rounds, emulator.pid)
        finally:
            emulator.stdin.close()
            emulator.wait(timeout=30)


def run(info, shape, rounds, pid):
    client = Client(info)
    subscriptions = info["subscription_ids"]

    def vm(round_number):
        s, g, v = round_number % shape[0], (round_number * 7) % shape[1], (round_number * 3) % shape[2]
        group = f"/subscriptions/{subscriptions[s]}/resourceGroups/rg-{g:03}"
        return subscriptions[s], group, f"vm-{s}-{g:03}-{v:03}"

    def one_vm(round_number):
        _, _, name = vm(round_number)
        found = client.arm("POST", GRAPH, {
            "query": f"Resources | where type =~ 'microsoft.compute/virtualmachines' and name =~ '{name}' "
                     "| project id, name, resourceGroup, subscriptionId, location"})
        assert found[0]["totalRecords"] == 1, found
        return found[1]

    def portal(round_number):
        _, _, name = vm(round_number)
        joined = client.arm("POST", GRAPH, {"query": PORTAL_QUERY.format(name=name)})
        assert joined[0]["totalRecords"] == 1 and joined[0]["data"][0]["publicIp"] == "127.0.0.1", joined
        return joined[1]

    def every_vm(_):
        return client.arm("POST", GRAPH, {
            "query": "Resources | where type =~ 'microsoft.compute/virtualmachines' | project id, name"})[1]

    def every_vm_state(_):
        return client.arm("POST", GRAPH, {
            "query": "Resources | where type =~ 'microsoft.compute/virtualmachines' "
                     "| project id, name, os = tostring(properties.storageProfile.osDisk.osType), "
                     "power = tostring(properties.extended.instanceView.powerState.code)"})[1]

    def policies(round_number):
        subscription, _, _ = vm(round_number)
        return client.arm("GET", f"/subscriptions/{subscription}/providers/Microsoft.Security/"
                                 "jitNetworkAccessPolicies?api-version=2020-01-01")[1]

    def vm_get(round_number):
        _, group, name = vm(round_number)
        return client.arm("GET", f"{group}/providers/Microsoft.Compute/virtualMachines/{name}"
                                 "?api-version=2024-07-01&$expand=instanceView")[1]

    def policy_get(round_number):
        _, group, _ = vm(round_number)
        return client.arm("GET", f"{group}/providers/Microsoft.Security/locations/westeurope/"
                                 "jitNetworkAccessPolicies/default?api-version=2020-01-01")[1]

    phases = [
        ("graph: one VM by name", one_vm, rounds),
        ("graph: portal-style join (VM, NICs, IPs)", portal, rounds),
        ("graph: every VM (first page of 1000)", every_vm, max(3, rounds // 4)),
        ("graph: every VM with OS and power state", every_vm_state, max(3, rounds // 4)),
        ("policies: list a subscription's", policies, rounds),
        ("VM: GET with instance view", vm_get, rounds),
        ("policy: GET", policy_get, rounds),
    ]
    admin = info["admin_endpoint"] + "/stats"
    has_stats = True
    print(f"\n{'':<44} {'client (HTTPS round trip)':<34} emulator (GET /_emulator/stats)")
    for label, call, count in phases:
        if has_stats:
            try:
                client.call("DELETE", admin)
            except urllib.error.HTTPError:
                has_stats = False
        try:
            samples = [call(round_number) for round_number in range(count)]
        except urllib.error.HTTPError as error:
            print(f"  {label:<44} refused: HTTP {error.code}")
            continue
        server = ""
        if has_stats:
            routes = [route for route in client.call("GET", admin)["routes"]
                      if not route["route"].startswith("POST /") or "ResourceGraph" in route["route"]]
            routes = [route for route in routes if "oauth2" not in route["route"]]
            if routes:
                route = max(routes, key=lambda route: route["count"])
                server = f"p50 {route['p50_ms']:6.1f} ms  p90 {route['p90_ms']:6.1f} ms  max {route['max_ms']:6.1f} ms"
        print(f"  {label:<44} {percentiles(samples)}   {server}  ({count} calls)")
    resident, peak = memory(pid)
    print(f"\nemulator memory: {resident:.0f} MiB resident, {peak:.0f} MiB peak")


if __name__ == "__main__":
    main()
