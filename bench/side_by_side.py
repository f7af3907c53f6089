#!/usr/bin/env python3
"""Measures jit side by side with what users would pick instead, against the emulator.

Usage: bench/side_by_side.py BIN_DIR [--peers PEER_VENV] [--out FILE] [--rounds N]
                              [--parts start_up,listing,connect,peer_connect,fan_out,
                                       agent_at_rest,binary_sizes]

BIN_DIR holds `jit`, `jit-agent` and `jit-emulator` (bench/run builds them). With
`--peers`, PEER_VENV is a virtual environment holding the Azure CLI (`az`) and the Azure
SDK for Python (`azure-mgmt-security`, `-compute`, `-network`, `azure-identity`);
bench/run creates it under target/. Python standard library only otherwise. `--parts`
runs only some parts and keeps the others' figures in FILE as the last run wrote them
(each part records the machine it ran on under `runs`).

What it measures (each part prints a table; everything goes to the JSON file):

- start-up: `jit --version` and `jit --help` against `/bin/true` (and, with peers,
  `az version` and `python -c "import azure.mgmt.security"`), interleaved in a shuffled
  order, median wall time of ROUNDS runs each (a third as many for the peers), measured
  from Python (so every figure includes the same cost of starting a process from it);
- listing at scale: the emulator loaded with bench/generate-world.py 10 20 25 (5,000 VMs,
  200 JIT policies, 10 subscriptions) and 20 ms added to every ARM call (the emulator's
  latency fault): `jit list -o json` (and, with peers, bench/peer_list.py on the Python
  SDK): wall time, ARM calls, peak resident memory; and the emulator's own figures;
- connect: `jit connect api-01 --no-launch -o json` on the default world, cold (the
  agent runs but has not seen the VM) then warm, with the emulator's initiating delay 0
  and 2 s: ARM calls before the initiate, all ARM calls, wall time, and detection latency
  (when `jit` noticed the port answering, `ports[0].answered_at`, minus when the emulator
  opened it, `GET /_emulator/state` `port_openings[].real_time`);
- with peers, the same JIT request as a cold connect made by bench/peer_connect.py on
  the Python SDK (poll the policy every 2 s) and on `az rest` (poll, then sleep 3 s),
  initiating delay 2 s, next to `jit connect` without an agent: wall time until each
  says the port is open, ARM calls, and whether the port answers then;
- fan-out: 50 `jit proxy api-01` at once, as `ssh` would start them, to the closed VM
  (initiating delay 2 s) through the agent: how many got the VM's SSH banner, how many
  `initiate`s and ARM calls that took, and the wall time to the last banner;
- the agent at rest: resident memory and wake-ups per minute (voluntary and involuntary
  context switches of every thread, from /proc/PID/task/*/status, over 30 s after 15 s
  of settling) with no window and with 50 windows;
- binary sizes.
"""

import concurrent.futures
import json
import os
import platform
import random
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_arguments(argv):
    arguments = {"bin": None, "peers": None, "out": os.path.join(HERE, "results.json"), "rounds": 30,
                 "parts": ",".join(PARTS)}
    rest = list(argv)
    while rest:
        item = rest.pop(0)
        if item in ("--peers", "--out", "--rounds", "--parts"):
            if not rest:
                sys.exit(f"{item} needs a value\n\n{__doc__}")
            value = rest.pop(0)
            arguments[item[2:]] = int(value) if item == "--rounds" else value
        elif arguments["bin"] is None and not item.startswith("-"):
            arguments["bin"] = item
        else:
            sys.exit(f"unknown argument {item!r}\n\n{__doc__}")
    if arguments["bin"] is None:
        sys.exit(__doc__)
    return arguments


def run_measured(argv, env=None, stdin=subprocess.DEVNULL):
    """Runs argv to completion: (wall seconds, peak RSS KiB, exit status, stdout, stderr).

    The peak comes from /usr/bin/time (GNU time) when it is installed: Linux keeps a
    process's peak across exec, so measured from here it would include this Python's own
    memory. Without it the peak is None. For start-up times use `time_only`."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(mode="r") as peak:
        wrapped = (["/usr/bin/time", "-f", "%M", "-o", peak.name, *argv]
                   if os.access("/usr/bin/time", os.X_OK) else argv)
        started = time.perf_counter()
        status = subprocess.run(wrapped, env=env, stdin=stdin, stdout=out, stderr=err).returncode
        wall = time.perf_counter() - started
        text = peak.read().strip().splitlines()
        rss = int(text[-1]) if text and text[-1].isdigit() else None
        out.seek(0)
        err.seek(0)
        return wall, rss, status, out.read().decode(errors="replace"), err.read().decode(errors="replace")


def time_only(argv, env):
    """Wall seconds of one run of argv (output discarded), and its exit status."""
    started = time.perf_counter()
    status = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL).returncode
    return time.perf_counter() - started, status


def median_ms(samples):
    return round(statistics.median(samples) * 1000, 2)


def proc_field(path, key):
    """The value of the first `key: value` line of a /proc file ("" where there is none)."""
    try:
        with open(path, encoding="utf-8") as lines:
            return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(key)), "")
    except OSError:
        return ""


def machine():
    model = proc_field("/proc/cpuinfo", "model name")
    memory = proc_field("/proc/meminfo", "MemTotal")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory": memory,
        "load_average_at_start": [round(value, 2) for value in load] if load else None,
    }


def table(title, header, rows):
    print(f"\n== {title}")
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    for row in [header, *rows]:
        print("  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))


# -- the emulator ---------------------------------------------------------------------

class Emulator:
    """A jit-emulator process and the environment that points jit at it."""

    def __init__(self, bin_dir, work, world=None, initiating_delay="0s"):
        self.state_dir = tempfile.mkdtemp(prefix="emulator-", dir=work)
        argv = [os.path.join(bin_dir, "jit-emulator"), "--initiating-delay", initiating_delay,
                "--state-dir", self.state_dir]
        if world:
            argv += ["--world", world]
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.info = json.loads(self.process.stdout.readline())
        self.context = ssl.create_default_context(cafile=self.info["ca_cert"])

    def admin(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.info["admin_endpoint"] + path, data=data, method=method,
                                         headers={"content-type": "application/json"} if data else {})
        with urllib.request.urlopen(request, context=self.context) as response:
            text = response.read()
        return json.loads(text) if text else None

    def arm_calls(self):
        """Every ARM call logged so far, as "METHOD /path" (lower-cased, no query). A call
        answered 401 is left out: it is sent again with a fresh token, and happens here
        only because the connect part moves the emulator's clock hours ahead."""
        calls = []
        for record in self.admin("GET", "/requests")["value"]:
            if record.get("status") == 401:
                continue
            path = record["path"].split("?", 1)[0].lower()
            if path.startswith("/subscriptions") or path.startswith("/providers"):
                calls.append(f"{record['method']} {path}")
        return calls

    def add_arm_latency(self, delay):
        self.admin("POST", "/faults", {"path_regex": "^/(subscriptions|providers)",
                                       "fault": {"kind": "latency", "delay": delay}})

    def resident_mib(self):
        return memory_kib(self.process.pid)["VmRSS"] / 1024

    def environment(self, home, agent):
        env = {
            "PATH": os.path.dirname(self.info["az_cli"]) + os.pathsep + os.environ.get("PATH", ""),
            "HOME": home,
            "XDG_CONFIG_HOME": os.path.join(home, "config"),
            "XDG_STATE_HOME": os.path.join(home, "state"),
            "XDG_RUNTIME_DIR": os.path.join(home, "runtime"),
            "JIT_STATE_DIR": os.path.join(home, "state", "jit"),
            "JIT_RUNTIME_DIR": os.path.join(home, "runtime", "jit"),
            "JIT_ARM_ENDPOINT": self.info["arm_endpoint"],
            "JIT_AUTHORITY_HOST": self.info["authority_host"],
            "JIT_CA_FILE": self.info["ca_cert"],
            "JIT_MY_IP_URLS": self.info["my_ip_url"],
            "JIT_AUTH": "cli",
            "NO_COLOR": "1",
            "LANG": "C.UTF-8",
        }
        for directory in ("config", "state", "runtime"):
            os.makedirs(os.path.join(home, directory), exist_ok=True)
        os.chmod(os.path.join(home, "runtime"), 0o700)
        if not agent:
            env["JIT_NO_AGENT"] = "1"
        return env

    def stop(self):
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def memory_kib(pid):
    values = {"VmRSS": 0, "VmHWM": 0}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in values:
                values[key] = int(rest.split()[0])
    return values


def context_switches(pid):
    """Voluntary + involuntary context switches so far, per thread of pid."""
    counts = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status", encoding="ascii") as status:
                counts[task] = sum(int(line.split(":")[1]) for line in status
                                   if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")))
        except FileNotFoundError:
            continue
    return counts


def wake_ups(before, after):
    """Context switches between two samples: each thread's growth, a thread that started
    in between counted whole (one that ended in between is not seen after)."""
    return sum(count - before.get(task, 0) for task, count in after.items())


def generate_world(work, shape):
    path = os.path.join(work, "world-" + "-".join(map(str, shape)) + ".toml")
    with open(path, "w", encoding="utf-8") as out:
        subprocess.run([sys.executable, os.path.join(HERE, "generate-world.py"), *map(str, shape)],
                       stdout=out, check=True)
    return path


# -- the parts ------------------------------------------------------------------------

def startup(bin_dir, peers, rounds):
    jit = os.path.join(bin_dir, "jit")
    commands = [
        ("/bin/true", ["/bin/true"]),
        ("jit --version", [jit, "--version"]),
        ("jit --help", [jit, "--help"]),
    ]
    if peers:
        commands += [
            ("az version", [os.path.join(peers, "bin", "az"), "version"]),
            ('python -c "import azure.mgmt.security"',
             [os.path.join(peers, "bin", "python"), "-c", "import azure.mgmt.security"]),
        ]
    env = dict(os.environ, NO_COLOR="1")
    samples = {label: [] for label, _ in commands}
    # Per round, `az version` ÷ `jit --version` when both ran: the issue's "median ratio,
    # interleaved runs" (each pair ran within the same round, under the same load).
    round_ratios = []
    peak = {label: 0 for label, _ in commands}
    peer_rounds = max(5, rounds // 3)
    # Interleaved, in a new order each round (the same for every run of the bench), so
    # that no command always runs right after another.
    shuffler = random.Random(11)
    for round_number in range(rounds):
        this_round = {}
        for label, argv in shuffler.sample(commands, len(commands)):
            if label.startswith(("az", "python")) and round_number >= peer_rounds:
                continue
            wall, status = time_only(argv, env)
            if status != 0:
                raise SystemExit(f"{label} failed ({status}): {' '.join(argv)}")
            samples[label].append(wall)
            this_round[label] = wall
        if "az version" in this_round:
            round_ratios.append(this_round["az version"] / this_round["jit --version"])
    for label, argv in commands:
        peak[label] = run_measured(argv, env)[1] or 0
    result = {label: {"median_ms": median_ms(values), "runs": len(values), "peak_rss_kib": peak[label],
                      "command": " ".join(argv)}
              for (label, argv), values in ((item, samples[item[0]]) for item in commands)}
    floor = result["/bin/true"]["median_ms"]
    version = result["jit --version"]["median_ms"]
    result["jit --version minus /bin/true (ms)"] = round(version - floor, 2)
    result["jit --help minus /bin/true (ms)"] = round(result["jit --help"]["median_ms"] - floor, 2)
    if peers:
        result["az version / jit --version"] = round(result["az version"]["median_ms"] / version, 1)
        result["az version / jit --version, median of per-round ratios"] = round(
            statistics.median(round_ratios), 1)
    rows = [(label, f"{value['median_ms']:.2f} ms", value["runs"], f"{value['peak_rss_kib'] / 1024:.1f} MiB")
            for label, value in result.items() if isinstance(value, dict)]
    table("start-up (median wall time, interleaved runs)", ("command", "median", "runs", "peak RSS"), rows)
    for label, value in result.items():
        if not isinstance(value, dict):
            print(f"  {label}: {value}")
    return result


def listing(bin_dir, peers, work, shape=(10, 20, 25)):
    world = generate_world(work, shape)
    started = time.perf_counter()
    emulator = Emulator(bin_dir, work, world)
    ready = time.perf_counter() - started
    result = {"world": {"subscriptions": shape[0], "groups_per_subscription": shape[1],
                        "vms_per_group": shape[2], "vms": shape[0] * shape[1] * shape[2],
                        "jit_policies": shape[0] * shape[1]},
              "arm_latency_ms": 20, "emulator_ready_s": round(ready, 2)}
    try:
        emulator.add_arm_latency("20ms")
        home = tempfile.mkdtemp(prefix="home-", dir=work)
        env = emulator.environment(home, agent=False)
        jit = os.path.join(bin_dir, "jit")
        # One unmeasured run: the emulator builds its Resource Graph table on first use.
        run_measured([jit, "list", "-o", "json"], env)
        emulator.admin("DELETE", "/stats")
        runs = []
        for _ in range(3):
            before = len(emulator.arm_calls())
            wall, rss, status, out, err = run_measured([jit, "list", "-o", "json"], env)
            if status != 0:
                raise SystemExit(f"jit list failed: {err}")
            listed = json.loads(out)
            rows = len(listed) if isinstance(listed, list) else len(listed.get("vms", []))
            runs.append({"wall_s": wall, "arm_calls": len(emulator.arm_calls()) - before,
                         "peak_rss_kib": rss, "vms_listed": rows})
        result["jit list -o json"] = {
            "command": f"{jit} list -o json",
            "median_wall_s": round(statistics.median(run["wall_s"] for run in runs), 3),
            "arm_calls": runs[-1]["arm_calls"],
            "peak_rss_mib": round(max(run["peak_rss_kib"] or 0 for run in runs) / 1024, 1),
            "vms_listed": runs[-1]["vms_listed"],
        }
        stats = emulator.admin("GET", "/stats")
        result["emulator"] = {
            "resident_mib": round(emulator.resident_mib(), 1),
            "routes": [{key: route[key] for key in ("route", "count", "p50_ms", "max_ms")}
                       for route in stats["routes"]],
        }
        if peers:
            script = os.path.join(HERE, "peer_list.py")
            peer_env = dict(env, **peer_environment(emulator))
            before = len(emulator.arm_calls())
            wall, rss, status, out, err = run_measured(
                [os.path.join(peers, "bin", "python"), script], peer_env)
            if status != 0:
                raise SystemExit(f"peer_list.py failed: {err}")
            result["python SDK (bench/peer_list.py)"] = {
                "command": f"{peers}/bin/python {script}",
                "wall_s": round(wall, 3), "arm_calls": len(emulator.arm_calls()) - before,
                "peak_rss_mib": round((rss or 0) / 1024, 1), "vms_listed": len(json.loads(out)),
            }
            result["az CLI (jit-policy list + vm list -d per subscription)"] = az_listing(
                emulator, peers, peer_env, work)
    finally:
        emulator.stop()
    rows = []
    for label, value in result.items():
        if isinstance(value, dict) and "arm_calls" in value:
            wall = value.get("median_wall_s", value.get("wall_s"))
            rows.append((label, f"{wall:.3f} s", value["arm_calls"], f"{value['peak_rss_mib']} MiB",
                         value["vms_listed"]))
    table(f"listing {result['world']['vms']} VMs in {shape[0]} subscriptions, 20 ms per ARM call",
          ("client", "wall", "ARM calls", "peak RSS", "VMs"), rows)
    graph = next((route for route in result["emulator"]["routes"] if "ResourceGraph" in route["route"]), None)
    print(f"  emulator: ready in {ready:.1f} s, {result['emulator']['resident_mib']} MiB resident"
          + (f", Resource Graph p50 {graph['p50_ms']:.1f} ms (with the 20 ms latency fault)" if graph else ""))
    return result


def az_signed_in(emulator, peers, env, work):
    """The Azure CLI of the peers, registered with the emulator's cloud and signed in as
    its service principal in a private AZURE_CONFIG_DIR: (az, its environment)."""
    az = os.path.join(peers, "bin", "az")
    env = dict(env, AZURE_CONFIG_DIR=tempfile.mkdtemp(prefix="az-", dir=work),
               AZURE_CORE_INSTANCE_DISCOVERY="false", AZURE_CORE_COLLECT_TELEMETRY="false",
               AZURE_CORE_ONLY_SHOW_ERRORS="true", AZURE_CORE_NO_COLOR="true")
    arm = emulator.info["arm_endpoint"]
    principal = emulator.info["service_principal"]
    for argv in (["cloud", "register", "--name", "JitEmulator", "--endpoint-resource-manager", f"{arm}/",
                  "--endpoint-active-directory", arm,
                  "--endpoint-active-directory-resource-id", "https://management.core.windows.net/"],
                 ["cloud", "set", "--name", "JitEmulator"],
                 ["login", "--service-principal", "--username", principal["client_id"],
                  "--password", principal["client_secret"], "--tenant", emulator.info["tenant_id"]]):
        _, _, status, _, err = run_measured([az, *argv], env)
        if status != 0:
            raise SystemExit(f"az {argv[0]} failed: {err}")
    return az, env


def az_listing(emulator, peers, env, work, limit_s=1200):
    """`az security jit-policy list` and `az vm list -d` for each subscription, as a script
    on the Azure CLI would gather what `jit list` shows (signing in is not timed)."""
    az, env = az_signed_in(emulator, peers, env, work)
    before = len(emulator.arm_calls())
    started = time.perf_counter()
    peak = 0
    vms = 0
    commands = []
    for subscription in emulator.info["subscription_ids"]:
        for argv in (["security", "jit-policy", "list"], ["vm", "list", "-d"]):
            if time.perf_counter() - started > limit_s:
                return {"command": "; ".join(commands), "did_not_finish_within_s": limit_s,
                        "arm_calls": len(emulator.arm_calls()) - before, "peak_rss_mib": round(peak / 1024, 1),
                        "wall_s": round(time.perf_counter() - started, 1), "vms_listed": vms}
            full = [az, *argv, "--subscription", subscription, "-o", "json"]
            if len(commands) < 2:
                commands.append(" ".join(["az", *argv, "--subscription", "SUBSCRIPTION", "-o", "json"]))
            _, rss, status, out, err = run_measured(full, env)
            if status != 0:
                raise SystemExit(f"az {' '.join(argv)} failed: {err}")
            peak = max(peak, rss or 0)
            if argv[0] == "vm":
                vms += len(json.loads(out))
    return {"command": "; ".join(commands) + " (per subscription)",
            "wall_s": round(time.perf_counter() - started, 3),
            "arm_calls": len(emulator.arm_calls()) - before,
            "peak_rss_mib": round(peak / 1024, 1), "vms_listed": vms}


def peer_environment(emulator):
    """How the Python SDK reaches the emulator: its service principal, authority and CA."""
    principal = emulator.info["service_principal"]
    return {
        "AZURE_TENANT_ID": emulator.info["tenant_id"],
        "AZURE_CLIENT_ID": principal["client_id"],
        "AZURE_CLIENT_SECRET": principal["client_secret"],
        "AZURE_AUTHORITY_HOST": emulator.info["authority_host"],
        "JIT_BENCH_ARM_ENDPOINT": emulator.info["arm_endpoint"],
        "JIT_BENCH_SUBSCRIPTIONS": ",".join(emulator.info["subscription_ids"]),
        "REQUESTS_CA_BUNDLE": emulator.info["ca_cert"],
        "SSL_CERT_FILE": emulator.info["ca_cert"],
    }


def split_at_initiate(calls):
    for index, call in enumerate(calls):
        if call.startswith("POST ") and call.endswith("/initiate"):
            return calls[:index], calls[index + 1:]
    return calls, []


def parse_time(text):
    """RFC 3339 UTC (`2026-12-07T08:00:00.123456Z`) to seconds since the epoch."""
    text = text.rstrip("Z")
    whole, _, fraction = text.partition(".")
    seconds = time.mktime(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) - time.timezone
    return seconds + (float("0." + fraction) if fraction else 0.0)


def connect(bin_dir, work):
    result = []
    jit = os.path.join(bin_dir, "jit")
    for delay in ("0s", "2s"):
        emulator = Emulator(bin_dir, work, initiating_delay=delay)
        home = tempfile.mkdtemp(prefix="home-", dir=work)
        env = emulator.environment(home, agent=True)
        try:
            run_measured([jit, "agent", "start"], env)
            for temperature in ("cold", "warm"):
                if temperature == "warm":
                    # The cold window ends (Azure's clock moves past it), so the warm
                    # connect waits for a closed port to open, as the cold one did.
                    emulator.admin("POST", "/clock", {"advance": "PT4H"})
                openings_before = len(emulator.admin("GET", "/state")["port_openings"])
                before = len(emulator.arm_calls())
                wall, _, status, out, err = run_measured([jit, "connect", "api-01", "--no-launch", "-o", "json"], env)
                if status != 0:
                    raise SystemExit(f"jit connect failed: {err}")
                calls = emulator.arm_calls()[before:]
                before_initiate, after_initiate = split_at_initiate(calls)
                report = json.loads(out)
                noticed = parse_time(report["ports"][0]["answered_at"])
                openings = emulator.admin("GET", "/state")["port_openings"][openings_before:]
                if not openings:
                    raise SystemExit(f"the emulator recorded no opening for the {temperature} connect")
                opened = parse_time(openings[0]["real_time"])
                result.append({
                    "initiating_delay": delay, "path": temperature,
                    "command": f"{jit} connect api-01 --no-launch -o json",
                    "arm_calls_before_initiate": len(before_initiate),
                    "arm_calls": len(calls),
                    "policy_reads_after_initiate": sum(1 for call in after_initiate
                                                       if "/jitnetworkaccesspolicies/" in call),
                    "wall_s": round(wall, 3),
                    "detection_ms": round((noticed - opened) * 1000, 1),
                })
        finally:
            run_measured([jit, "agent", "stop"], env)
            emulator.stop()
    table("connect (jit connect api-01 --no-launch, the agent running)",
          ("initiating delay", "path", "calls before initiate", "all calls", "policy reads", "wall",
           "detection"),
          [(run["initiating_delay"], run["path"], run["arm_calls_before_initiate"], run["arm_calls"],
            run["policy_reads_after_initiate"], f"{run['wall_s']:.3f} s", f"{run['detection_ms']} ms")
           for run in result])
    return result


def answers_ssh(host, port, timeout=2.0):
    """Whether an SSH identification line comes from host:port within timeout."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.settimeout(timeout)
            return connection.recv(256).startswith(b"SSH-2.0-")
    except OSError:
        return False


def peer_connect(bin_dir, peers, work):
    """The JIT request of a cold `jit connect`, made by bench/peer_connect.py on the
    Python SDK (poll the policy) and on `az rest` (poll, then sleep), initiating delay
    2 s, each on a fresh emulator: wall time until the script says the port is open, ARM
    calls, and whether the port answers then."""
    jit = os.path.join(bin_dir, "jit")
    script = os.path.join(HERE, "peer_connect.py")
    result = []
    for client in ("jit", "sdk", "az-rest"):
        emulator = Emulator(bin_dir, work, initiating_delay="2s")
        home = tempfile.mkdtemp(prefix="home-", dir=work)
        env = emulator.environment(home, agent=False)
        vm = next(vm for vm in emulator.admin("GET", "/state")["virtual_machines"] if vm["name"] == "api-01")
        try:
            if client == "jit":
                argv = [jit, "connect", "api-01", "--no-launch", "-o", "json"]
                label = "jit connect api-01 --no-launch (no agent)"
            else:
                env = dict(env, **peer_environment(emulator), JIT_BENCH_VM_ID=vm["id"],
                           JIT_BENCH_MY_IP_URL=emulator.info["my_ip_url"])
                if client == "az-rest":
                    az, env = az_signed_in(emulator, peers, env, work)
                    env["JIT_BENCH_AZ"] = az
                argv = [os.path.join(peers, "bin", "python"), script, client]
                label = f"bench/peer_connect.py {client}"
            before = len(emulator.arm_calls())
            wall, _, status, out, err = run_measured(argv, env)
            if status != 0:
                raise SystemExit(f"{label} failed: {err}")
            answer = json.loads(out)
            port = answer["ports"][0]["connect_port"] if client == "jit" else answer["port"]
            host = answer["ports"][0]["host"] if client == "jit" else vm["public_ip"]
            result.append({"client": label, "command": " ".join(argv), "wall_s": round(wall, 3),
                           "arm_calls": len(emulator.arm_calls()) - before,
                           "answers_at_the_end": answers_ssh(host, port)})
        finally:
            emulator.stop()
    table("the same JIT request, initiating delay 2 s (fresh emulator each)",
          ("client", "wall until it says the port is open", "ARM calls", "port answers then"),
          [(run["client"], f"{run['wall_s']:.3f} s", run["arm_calls"], run["answers_at_the_end"])
           for run in result])
    return result


def fan_out(bin_dir, work, clients=50):
    """`clients` `jit proxy api-01` at once (as `ssh` starts them: Ansible, an editor
    reconnecting) to the closed VM, initiating delay 2 s, through the agent."""
    jit = os.path.join(bin_dir, "jit")
    emulator = Emulator(bin_dir, work, initiating_delay="2s")
    home = tempfile.mkdtemp(prefix="home-", dir=work)
    env = emulator.environment(home, agent=True)
    proxies = []
    try:
        run_measured([jit, "agent", "start"], env)
        before = len(emulator.arm_calls())
        started = time.perf_counter()
        proxies = [subprocess.Popen([jit, "proxy", "api-01"], env=env, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                   for _ in range(clients)]

        def banner(proxy):
            line = proxy.stdout.readline()
            return line, time.perf_counter() - started

        with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
            answers = list(pool.map(banner, proxies))
        calls = emulator.arm_calls()[before:]
        connected = [elapsed for line, elapsed in answers if line.startswith(b"SSH-2.0-")]
        result = {
            "command": f"{clients} x {jit} proxy api-01 at once (initiating delay 2 s)",
            "clients": clients,
            "connected": len(connected),
            "initiates": sum(1 for call in calls if call.startswith("POST ") and call.endswith("/initiate")),
            "arm_calls": len(calls),
            "wall_s_to_last_banner": round(max(connected), 3) if connected else None,
        }
    finally:
        for proxy in proxies:
            proxy.kill()
            proxy.wait()
        run_measured([jit, "agent", "stop"], env)
        emulator.stop()
    table("fan-out through the agent", ("clients", "connected", "initiates", "ARM calls", "wall"),
          [(result["clients"], result["connected"], result["initiates"], result["arm_calls"],
            f"{result['wall_s_to_last_banner']} s")])
    return result


def agent_status(jit, env):
    for _ in range(3):
        _, _, status, out, err = run_measured([jit, "agent", "status", "-o", "json"], env)
        if status == 0 and out.strip():
            return json.loads(out)
        time.sleep(1)
    raise SystemExit(f"jit agent status failed ({status}): {out!r} {err}")


def agent_at_rest(bin_dir, work, seconds=30):
    jit = os.path.join(bin_dir, "jit")
    # 100 VMs in one group: 50 of them in one JIT policy, requested in one `jit request`.
    world = generate_world(work, (1, 1, 100))
    emulator = Emulator(bin_dir, work, world)
    home = tempfile.mkdtemp(prefix="home-", dir=work)
    env = emulator.environment(home, agent=True)
    result = {}
    try:
        _, _, status, _, err = run_measured([jit, "agent", "start"], env)
        if status != 0:
            raise SystemExit(f"jit agent start failed: {err}")
        pid = agent_status(jit, env)["pid"]
        for windows in (0, 50):
            if windows:
                names = [f"vm-0-000-{index:03}" for index in range(0, 100, 2)]
                _, _, status, _, err = run_measured([jit, "request", *names, "--no-wait"], env)
                if status != 0:
                    raise SystemExit(f"jit request failed: {err}")
            # Let the request's work settle (tokio's idle blocking threads end after 10 s).
            time.sleep(15)
            switches = context_switches(pid)
            time.sleep(seconds)
            woken = wake_ups(switches, context_switches(pid))
            rss = memory_kib(pid)["VmRSS"]
            tracked = agent_status(jit, env).get("open_windows")
            if tracked != windows:
                raise SystemExit(f"the agent tracks {tracked} windows, not {windows}")
            result[f"{windows} windows"] = {"resident_mib": round(rss / 1024, 1),
                                            "wake_ups_per_minute": round(woken * 60 / seconds, 1),
                                            "sampled_s": seconds}
    finally:
        run_measured([jit, "agent", "stop"], env)
        emulator.stop()
    table("the agent at rest", ("windows", "resident", "wake-ups per minute"),
          [(label, f"{value['resident_mib']} MiB", value["wake_ups_per_minute"]) for label, value in result.items()])
    return result


def sizes(bin_dir):
    """The release binaries, and the Windows ones when packaging/build-release built them."""
    result = {}
    windows = os.path.join(os.path.dirname(bin_dir), "x86_64-pc-windows-gnu", "release")
    for directory, suffix, label in ((bin_dir, "", "Linux x86_64"), (windows, ".exe", "Windows x86_64")):
        for binary in ("jit", "jit-agent", "jit-emulator"):
            path = os.path.join(directory, binary + suffix)
            if os.path.exists(path):
                result[f"{binary}{suffix} ({label})"] = {"bytes": os.path.getsize(path)}
    table(f"binary sizes ({bin_dir}; jit and jit-agent should stay under 12 MB)", ("binary", "size"),
          [(name, f"{value['bytes'] / 1e6:.1f} MB") for name, value in result.items()])
    return result


PARTS = ("start_up", "listing", "connect", "peer_connect", "fan_out", "agent_at_rest", "binary_sizes")


def main():
    arguments = parse_arguments(sys.argv[1:])
    bin_dir = os.path.abspath(arguments["bin"])
    peers = os.path.abspath(arguments["peers"]) if arguments["peers"] else None
    parts = arguments["parts"].split(",")
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        sys.exit(f"unknown part(s) {', '.join(unknown)}: choose among {', '.join(PARTS)}")
    results = {}
    if set(parts) != set(PARTS) and os.path.exists(arguments["out"]):
        # Some parts again: the others stay as the last run wrote them.
        with open(arguments["out"], encoding="utf-8") as previous:
            results = json.load(previous)
    results.setdefault("runs", {})
    machine_now = machine()
    print(json.dumps(machine_now))
    with tempfile.TemporaryDirectory(prefix="jit-bench-") as work:
        for part in parts:
            if part == "start_up":
                results[part] = startup(bin_dir, peers, arguments["rounds"])
            elif part == "listing":
                results[part] = listing(bin_dir, peers, work)
            elif part == "connect":
                results[part] = connect(bin_dir, work)
            elif part == "peer_connect":
                if not peers:
                    print("\n== peer_connect: skipped (needs --peers)")
                    continue
                results[part] = peer_connect(bin_dir, peers, work)
            elif part == "fan_out":
                results[part] = fan_out(bin_dir, work)
            elif part == "agent_at_rest":
                results[part] = agent_at_rest(bin_dir, work)
            else:
                results[part] = sizes(bin_dir)
            results["runs"][part] = {"machine": machine_now, "bin_dir": bin_dir, "peers": peers}
    with open(arguments["out"] + ".tmp", "w", encoding="utf-8") as out:
        json.dump(results, out, indent=2)
        out.write("\n")
    os.replace(arguments["out"] + ".tmp", arguments["out"])
    print(f"\nwritten to {arguments['out']}")


if __name__ == "__main__":
    main()
