"""Benchmarks of intrexx-exchange against floors: `make bench` (venv/bin/python bench/run.py [--quick]).

Prints markdown tables and writes bench/results/latest.json (--quick: bench/results/quick.json). Every timing is
a median of repetitions; a product and its floor are run alternately (ABBA order), each in a fresh process
(bench/child.py) where the measurement calls for one, and their ratio is the median of the per-repetition ratios.
Nothing here asserts a time: targets are reported as met or not, and the exit code is 1 only when a measurement
could not be taken at all.

Measurements:
  1. evaluation  the Pulumi program under the simulated tenant vs bench/floor/__main__.py, 1..400 portals
  2. resources   resources, Graph writes and dependency depth per api x access profile vs the job's minimum
  3. verify      `verify` on healthy portals vs bare MSAL against the loopback provider; notice latency after
                 replication ends; request rate per client
  4. plan/render plan + render for 400 portals; `python -m intrexx_connector plan --stack dev` warm
  5. memory      peak RSS of the 400-portal evaluation (from 1.)
  +  profile     cProfile of the 400-portal evaluation; time per phase; what-if experiments for the proposals
"""

import argparse
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
CHILD = BENCH_DIR / "child.py"
RESULTS_DIR = BENCH_DIR / "results"
PYTHON = sys.executable
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

FULL = {
    "sizes": (1, 10, 40, 100, 400), "reps": 5, "reps_large": 3, "large": 400,
    "verify_portals": 10, "verify_reps": 9, "latency_reps": 5, "replication_delay": 3.0,
    "plan_portals": 400, "plan_reps": 3, "dev_plan_reps": 5,
    "profile_portals": 400, "phase_reps": 3,
    "experiment_sizes": (100, 400), "experiment_reps": {100: 5, 400: 3},
}
QUICK = {
    "sizes": (1, 10), "reps": 2, "reps_large": 2, "large": 10,
    "verify_portals": 3, "verify_reps": 2, "latency_reps": 1, "replication_delay": 3.0,
    "plan_portals": 10, "plan_reps": 1, "dev_plan_reps": 1,
    "profile_portals": 10, "phase_reps": 1,
    "experiment_sizes": (10,), "experiment_reps": {10: 1},
}

# Resource types, as the simulated tenant records them.
APPLICATION = "azuread:index/application:Application"
SERVICE_PRINCIPAL = "azuread:index/servicePrincipal:ServicePrincipal"
APPLICATION_PASSWORD = "azuread:index/applicationPassword:ApplicationPassword"
DELEGATED_GRANT = "azuread:index/servicePrincipalDelegatedPermissionGrant:ServicePrincipalDelegatedPermissionGrant"
APP_ROLE_ASSIGNMENT = "azuread:index/appRoleAssignment:AppRoleAssignment"
CONSENT_TYPES = (DELEGATED_GRANT, APP_ROLE_ASSIGNMENT)
# Graph write requests per created resource, as terraform-provider-azuread (under pulumi_azuread) creates them:
# applications and service principals are POSTed, then PATCHed once (the provider's replication probe: it sets
# the real display name / description); more than 20 owners cost one more request, and so does removing the
# deploying identity when it is not among the owners (never the case here). Credentials, delegated grants and
# app role assignments are one POST each.
GRAPH_WRITES = {APPLICATION: 2, SERVICE_PRINCIPAL: 2, APPLICATION_PASSWORD: 1, DELEGATED_GRANT: 1,
                APP_ROLE_ASSIGNMENT: 1}
MAX_INLINE_OWNERS = 20

TARGETS = {
    "evaluation ratio at 100 portals": 1.25,
    "growth 40->400, product/floor": 1.0,
    "verify / bare MSAL (10 portals)": 1.3,
    "notice latency after replication (s)": 2.0,
    "token requests per second per client (1 / shortest gap)": 1.0,
    "plan --stack dev, warm (s)": 2.0,
}


# Helpers ----------------------------------------------------------------------------------------------------

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def run_child(*args, env_extra=None, cwd=None, command=None) -> dict:
    """One process; returns its JSON answer (if any) with the parent's wall time and the child's peak RSS."""
    env = {**os.environ, **(env_extra or {})}
    command = command or [PYTHON, str(CHILD), *args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} exited {process.returncode}: {stderr.strip()[-1500:]}")
    lines = stdout.strip().splitlines()
    answer = json.loads(lines[-1]) if lines and command[1:2] == [str(CHILD)] else {}
    return {**answer, "wall_s": wall, "maxrss_mb": usage.ru_maxrss / 1024}


def alternate(rep: int, first, second):
    """ABBA: the order of the pair flips every repetition, so drift hits both alike."""
    return (first, second) if rep % 2 == 0 else (second, first)


def paired_ratio(samples_a: list, samples_b: list, key: str):
    return median([a[key] / b[key] for a, b in zip(samples_a, samples_b)])


# 1. Evaluation ----------------------------------------------------------------------------------------------

def measure_evaluation(p: dict) -> dict:
    """Whole process per sample: interpreter start, imports, evaluate() under the simulated tenant."""
    equivalence = run_child("equivalence", "--portals", "3")
    if not equivalence["identical"]:
        raise RuntimeError(f"the floor does not create the product's resources: {equivalence}")
    samples = {(program, n): [] for n in p["sizes"] for program in ("product", "floor")}
    for rep in range(p["reps"]):
        for n in p["sizes"]:
            if n >= p["large"] and rep >= p["reps_large"]:
                continue
            for program in alternate(rep, "product", "floor"):
                samples[(program, n)].append(run_child("eval", "--program", program, "--portals", str(n)))
    sizes = {}
    for n in p["sizes"]:
        product, floor = samples[("product", n)], samples[("floor", n)]
        sizes[n] = {
            "reps": len(product),
            "product_wall_s": median(s["wall_s"] for s in product),
            "floor_wall_s": median(s["wall_s"] for s in floor),
            "product_eval_s": median(s["eval_s"] for s in product),
            "floor_eval_s": median(s["eval_s"] for s in floor),
            "product_startup_s": median(s["startup_s"] for s in product),
            "floor_startup_s": median(s["startup_s"] for s in floor),
            "ratio_wall": paired_ratio(product, floor, "wall_s"),
            "ratio_eval": paired_ratio(product, floor, "eval_s"),
            "product_maxrss_mb": median(s["maxrss_mb"] for s in product),
            "floor_maxrss_mb": median(s["maxrss_mb"] for s in floor),
            "resources": product[0]["resources"], "floor_resources": floor[0]["resources"],
            "samples": {"product": product, "floor": floor},
        }
    result = {"equivalence": equivalence, "sizes": sizes}
    if 40 in sizes and 400 in sizes:
        growth = {program: sizes[400][f"{program}_wall_s"] / sizes[40][f"{program}_wall_s"]
                  for program in ("product", "floor")}
        result["growth_40_400"] = {**growth, "ratio": growth["product"] / growth["floor"]}
    return result


# 2. Resources, Graph writes, dependency depth ----------------------------------------------------------------

def minimum_for(profile: str, catalogue: dict) -> dict:
    """What the job needs, from the catalogue's default permission sets alone (not from the product's code)."""
    api, access = profile.split("/")[0], profile.split("/")[1].split("+")[0]
    scoped = "mailboxScope" in profile
    home = catalogue["apis"][api]
    names = catalogue["profiles"][api][access]
    kind = "scopes" if access == "delegated" else "roles"

    def resource_of(name):
        return home if name in catalogue["resources"][home][kind] else "graph"

    if access == "delegated":
        consent = len({resource_of(n) for n in names})  # one grant per resource API
    else:
        roles = [catalogue["resources"][resource_of(n)]["roles"][n] for n in names]
        consent = sum(1 for role in roles if not (scoped and role.get("exchangeRole")))  # one per role
    counts = {APPLICATION: 1, SERVICE_PRINCIPAL: 1, APPLICATION_PASSWORD: 2,
              DELEGATED_GRANT if access == "delegated" else APP_ROLE_ASSIGNMENT: consent}
    return {"resources": sum(counts.values()), "consent": consent,
            "graph_writes": sum(GRAPH_WRITES[t] * c for t, c in counts.items())}


def graph_writes(record: dict, deployer: str | None) -> int:
    writes = GRAPH_WRITES.get(record["type"], 0)
    owners = record["inputs"].get("owners")
    if owners is not None:
        writes += len([o for o in owners if o != deployer]) >= MAX_INLINE_OWNERS
        writes += deployer not in owners
    return writes


def dependency_depth(records: list) -> int:
    """Longest chain of resources where each one's inputs name the previous one's id, objectId or clientId."""
    identifiers = {r["name"]: {r["id"], r["state"].get("objectId"), r["state"].get("clientId")} - {None}
                   for r in records}

    def strings(value):
        if isinstance(value, dict):
            for v in value.values():
                yield from strings(v)
        elif isinstance(value, list):
            for v in value:
                yield from strings(v)
        elif isinstance(value, str):
            yield value

    depends = {r["name"]: {other for other, ids in identifiers.items()
                           if other != r["name"] and ids & set(strings(r["inputs"]))} for r in records}
    depth = {}

    def chain(name):
        if name not in depth:
            depth[name] = 1 + max((chain(d) for d in depends[name]), default=0)
        return depth[name]

    return max((chain(r["name"]) for r in records), default=0)


def measure_resources(p: dict) -> dict:
    import yaml

    catalogue = yaml.safe_load((ROOT / "components" / "catalogue.yaml").read_text(encoding="utf-8"))
    answer = run_child("resources")
    profiles = {}
    for profile, data in answer.items():
        if profile in ("wall_s", "maxrss_mb"):
            continue
        records = [r for r in data["resources"] if r["type"].startswith("azuread:")]
        application = next(r for r in records if r["type"] == APPLICATION)
        deployer = next((o for o in application["inputs"].get("owners", [])), None)
        by_type = {}
        for r in records:
            by_type[r["type"].split(":")[-1]] = by_type.get(r["type"].split(":")[-1], 0) + 1
        minimum = minimum_for(profile, catalogue)
        profiles[profile] = {
            "resources": len(records), "min_resources": minimum["resources"],
            "consent": sum(1 for r in records if r["type"] in CONSENT_TYPES), "min_consent": minimum["consent"],
            "graph_writes": sum(graph_writes(r, deployer) for r in records),
            "min_graph_writes": minimum["graph_writes"],
            "depth": dependency_depth(records), "min_depth": 3 if minimum["consent"] else 2,
            "by_type": by_type, "invokes_per_stack": len(data["calls"]),
            "components": len(data["resources"]) - len(records),
        }
    return {"profiles": profiles, "graph_writes_model": {t.split(":")[-1]: w for t, w in GRAPH_WRITES.items()}}


# 3. verify ----------------------------------------------------------------------------------------------------

def _register(idp, portals) -> None:
    from components.names import ADMIN_CONSENT, ROLE, Field, PermissionField

    for portal in portals:
        roles = [q[PermissionField.NAME] for q in portal[Field.PERMISSIONS]
                 if q[PermissionField.TYPE] == ROLE and q[PermissionField.GRANTED_BY] == ADMIN_CONSENT]
        idp.add_client(portal[Field.TENANT_ID], portal[Field.CLIENT_ID], portal.client_secret, roles=roles)


def _bare_msal(idp, portals, workers: int) -> None:
    """The floor: one ConfidentialClientApplication and acquire_token_for_client per client, same pool size."""
    import msal

    from components.names import Field

    def token(portal):
        app = msal.ConfidentialClientApplication(
            portal[Field.CLIENT_ID], client_credential=portal.client_secret,
            authority=f"{idp.origin}/{portal[Field.TENANT_ID]}", instance_discovery=False, http_client=session,
            timeout=10, token_cache=msal.TokenCache())
        answer = app.acquire_token_for_client(scopes=[f"{portal[Field.RESOURCE]}/.default"])
        if "access_token" not in answer:
            raise RuntimeError(f"bare MSAL failed for {portal.name}: {answer.get('error_description')}")

    with idp.session() as session, ThreadPoolExecutor(max_workers=min(workers, len(portals))) as pool:
        list(pool.map(token, portals))


class RecordingSession:
    """A session for MSAL that trusts the test CA and notes when each request left (client-side clock)."""

    def __init__(self, idp):
        self.session = idp.session()
        self.sent = []  # (perf_counter, method, url)

    def __getattr__(self, name):
        return getattr(self.session, name)

    def request(self, method, url, *args, **kwargs):
        self.sent.append((time.perf_counter(), method.upper(), url))
        return self.session.request(method, url, *args, **kwargs)

    def get(self, url, **kwargs):
        return self.request("GET", url, **kwargs)

    def post(self, url, data=None, **kwargs):
        return self.request("POST", url, data=data, **kwargs)


def _verify(idp, portals, session=None, **options) -> list:
    from intrexx_connector.verify import VerifyOptions, verify_portals

    own = session is None
    session = session or idp.session()
    try:
        results = verify_portals(portals, VerifyOptions(authority_host=idp.origin, http_client=session, **options))
    finally:
        if own:
            session.close()
    failed = [r.summary_line() for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"verify failed: {failed}")
    return results


def request_rate(timestamps: list) -> dict:
    """The most token requests one client sent within any 1-second window, and the shortest gap."""
    stamps = sorted(timestamps)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    window = max((sum(1 for t in stamps[i:] if t - s < 1.0) for i, s in enumerate(stamps)), default=0)
    return {"requests": len(stamps), "min_gap_s": min(gaps) if gaps else None, "max_in_1s": window}


def measure_verify(p: dict) -> dict:
    from idp_fixture import IdentityProvider
    from intrexx_connector.stack_outputs import parse_outputs
    from intrexx_connector.verify import VerifyOptions

    workers = VerifyOptions().max_workers
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        outputs_file = Path(tmp) / "outputs.json"
        run_child("outputs", "--portals", str(p["verify_portals"]), "--out", str(outputs_file))
        portals = parse_outputs(outputs_file.read_text(encoding="utf-8"))
    with IdentityProvider() as idp:
        _register(idp, portals)
        _verify(idp, portals)  # warm: node's JIT, TLS session setup, and a check that every portal is healthy
        _bare_msal(idp, portals, workers)
        samples = {"verify": [], "msal": []}
        for rep in range(p["verify_reps"]):
            for kind in alternate(rep, "verify", "msal"):
                started = time.perf_counter()
                _verify(idp, portals) if kind == "verify" else _bare_msal(idp, portals, workers)
                samples[kind].append({"wall_s": time.perf_counter() - started})
        healthy = {"portals": len(portals), "reps": p["verify_reps"], "workers": workers,
                   "verify_s": median(s["wall_s"] for s in samples["verify"]),
                   "msal_s": median(s["wall_s"] for s in samples["msal"]),
                   "ratio": paired_ratio(samples["verify"], samples["msal"], "wall_s")}
        replication = _measure_replication(idp, portals[0], p)
    return {"healthy": healthy, "replication": replication}


def _measure_replication(idp, portal, p: dict) -> dict:
    """Register the client anew with a replication delay, then verify: how long after the delay ends does
    verify notice, and how often did it ask meanwhile?"""
    from components.names import Field

    delay, runs = p["replication_delay"], []
    for _ in range(p["latency_reps"]):
        idp.reset_requests()
        session = RecordingSession(idp)
        before = time.perf_counter()
        idp.add_client(portal[Field.TENANT_ID], portal[Field.CLIENT_ID], portal.client_secret,
                       replication_delay_seconds=delay)
        try:
            (result,) = _verify(idp, [portal], session=session, timeout=60)
        finally:
            session.close()
        done = time.perf_counter()
        log = idp.requests().get(portal[Field.CLIENT_ID], {"timestamps": []})
        posts = [t for t, method, url in session.sent if method == "POST" and url.endswith("/token")]
        # Upper bound: the provider started the delay no earlier than `before`.
        runs.append({"latency_s": done - (before + delay), "attempts": result.attempts,
                     "http_requests": len(session.sent),
                     "client_min_gap_s": min((b - a for a, b in zip(posts, posts[1:])), default=None),
                     **request_rate(log["timestamps"])})
    gaps = [r["min_gap_s"] for r in runs if r["min_gap_s"] is not None]
    client_gaps = [r["client_min_gap_s"] for r in runs if r["client_min_gap_s"] is not None]
    return {"delay_s": delay, "reps": len(runs), "runs": runs,
            "latency_median_s": median(r["latency_s"] for r in runs),
            "latency_max_s": max(r["latency_s"] for r in runs),
            "attempts_median": median(r["attempts"] for r in runs),
            "http_requests_per_attempt": median(r["http_requests"] / r["attempts"] for r in runs),
            "max_in_1s": max(r["max_in_1s"] for r in runs),
            "min_gap_s": min(gaps, default=None), "client_min_gap_s": min(client_gaps, default=None)}


# 4. plan and render -------------------------------------------------------------------------------------------

def measure_plan_render(p: dict) -> dict:
    steps = []
    for _ in range(p["plan_reps"]):
        with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
            steps.append(run_child("plan-render", "--portals", str(p["plan_portals"]), "--workdir", tmp))
    keys = ("wall_s", "plan_evaluate_s", "plan_as_dict_s", "plan_render_s", "parse_outputs_s", "render_s")
    large = {"portals": p["plan_portals"], "reps": len(steps), "files": steps[0]["files"],
             **{k: median(s[k] for s in steps) for k in keys}}
    return {"large": large, "dev": _measure_dev_plan(p)}


def _measure_dev_plan(p: dict) -> dict:
    """`python -m intrexx_connector plan --stack dev` in a copy of the project's stack files (it renders into
    ./build/dev, which must not be the working tree's), against `python -c 'import pulumi, pulumi_azuread'`."""
    env = {"PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="bench-devplan-") as tmp:
        for name in ("Pulumi.yaml", "Pulumi.dev.yaml"):
            shutil.copy(ROOT / name, Path(tmp) / name)
        plan = [PYTHON, "-m", "intrexx_connector", "plan", "--stack", "dev"]
        imports = [PYTHON, "-c", "import pulumi, pulumi_azuread"]
        run_child(command=plan, cwd=tmp, env_extra=env)  # warm the page cache and __pycache__
        samples = {"plan": [], "imports": []}
        for rep in range(p["dev_plan_reps"]):
            for kind in alternate(rep, "plan", "imports"):
                samples[kind].append(run_child(command=plan if kind == "plan" else imports, cwd=tmp,
                                               env_extra=env))
    return {"reps": p["dev_plan_reps"], "plan_s": median(s["wall_s"] for s in samples["plan"]),
            "imports_s": median(s["wall_s"] for s in samples["imports"]),
            "plan_maxrss_mb": median(s["maxrss_mb"] for s in samples["plan"])}


# Profile, phases, experiments ----------------------------------------------------------------------------------

OUR_CODE = (str(ROOT / "components"), str(ROOT / "__main__.py"), str(ROOT / "intrexx_connector"))
WAITS = ("poll' of 'select", "acquire' of '_thread", "'get' of '_queue", "'__enter__' of '_thread",
         "built-in method time.sleep")


def category(function: tuple) -> str:
    filename, _, name = function
    if filename == "~":
        return "waiting (epoll, locks)" if any(w in name for w in WAITS) else "builtins"
    if filename.startswith(str(ROOT / "components" / "simulation.py")):
        return "our harness (components/simulation.py)"
    if filename.startswith(OUR_CODE):
        return "our program (components/, __main__.py)"
    if "site-packages/pulumi_azuread/" in filename:
        return "pulumi_azuread"
    if "site-packages/pulumi/" in filename:
        return "pulumi SDK runtime"
    if "site-packages/google/" in filename or "site-packages/grpc" in filename:
        return "grpc/protobuf"
    if "/asyncio/" in filename:
        return "asyncio event loop"
    return "other stdlib"


def analyse_profile(path: str, top: int = 15) -> dict:
    stats = pstats.Stats(path).stats  # function -> (primitive calls, calls, tottime, cumtime, callers)
    total = sum(v[2] for v in stats.values())
    by_category = {}
    for function, values in stats.items():
        by_category[category(function)] = by_category.get(category(function), 0.0) + values[2]
    ours = sorted(((f, v) for f, v in stats.items() if f[0].startswith(OUR_CODE)), key=lambda fv: -fv[1][3])
    return {
        "total_s": total,
        "by_category": dict(sorted(by_category.items(), key=lambda kv: -kv[1])),
        "top_ours": [{"function": f"{Path(f[0]).relative_to(ROOT)}:{f[1]}({f[2]})", "calls": v[1],
                      "tottime_s": v[2], "cumtime_s": v[3]} for f, v in ours[:top]],
    }


def measure_profile(p: dict) -> dict:
    n = str(p["profile_portals"])
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        profiled = run_child("profile", "--program", "product", "--portals", n, "--out", f"{tmp}/product")
        main = analyse_profile(profiled["main"])
        workers = analyse_profile(profiled["workers"]) if profiled.get("workers") else None
        keep = Path(p.get("results_dir", RESULTS_DIR)) / f"profile-{n}.pstats"
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(profiled["main"], keep)
    phases = {program: [] for program in ("product", "floor")}
    for rep in range(p["phase_reps"]):
        for program in alternate(rep, "product", "floor"):
            phases[program].append(run_child("phases", "--program", program, "--portals", n))
    phase_keys = ("program_s", "drain_s", "outputs_s")
    return {"portals": p["profile_portals"], "profiled_eval_s": profiled["profiled_eval_s"],
            "main_thread": main, "worker_threads": workers, "pstats": str(keep),
            "phases": {program: {k: median(s[k] for s in samples) for k in phase_keys}
                       for program, samples in phases.items()}}


EXPERIMENTS = {
    "product": ("product", ""),
    "product + P1 walk-outputs": ("product", "walk-outputs"),
    "product + P1 + P2 lean-component-outputs": ("product", "walk-outputs,lean-component-outputs"),
    "floor": ("floor", ""),
    "floor + P1 walk-outputs": ("floor", "walk-outputs"),
}


def measure_experiments(p: dict) -> dict:
    """What-if: the proposals as monkeypatches in the child (bench/child.py EXPERIMENTS), interleaved."""
    result = {}
    for n in p["experiment_sizes"]:
        samples = {name: [] for name in EXPERIMENTS}
        for rep in range(p["experiment_reps"][n]):
            names = list(EXPERIMENTS) if rep % 2 == 0 else list(reversed(EXPERIMENTS))
            for name in names:
                program, experiment = EXPERIMENTS[name]
                samples[name].append(run_child("eval", "--program", program, "--portals", str(n),
                                               env_extra={"BENCH_EXPERIMENT": experiment}))
        result[n] = {name: {"wall_s": median(s["wall_s"] for s in runs), "eval_s": median(s["eval_s"] for s in runs),
                            "ratio_to_floor_wall": paired_ratio(runs, samples["floor"], "wall_s"),
                            "ratio_to_floor_p1_wall": paired_ratio(runs, samples["floor + P1 walk-outputs"],
                                                                   "wall_s")}
                     for name, runs in samples.items()}
        result[n]["reps"] = p["experiment_reps"][n]
    return result


# Targets and tables -----------------------------------------------------------------------------------------

def targets(results: dict) -> list:
    def get(*keys):
        value = results
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    measured = {
        "evaluation ratio at 100 portals": get("evaluation", "sizes", 100, "ratio_wall"),
        "growth 40->400, product/floor": get("evaluation", "growth_40_400", "ratio"),
        "verify / bare MSAL (10 portals)": get("verify", "healthy", "ratio")
        if get("verify", "healthy", "portals") == 10 else None,
        "notice latency after replication (s)": get("verify", "replication", "latency_max_s"),
        "token requests per second per client (1 / shortest gap)":
            1 / get("verify", "replication", "min_gap_s") if get("verify", "replication", "min_gap_s") else None,
        "plan --stack dev, warm (s)": get("plan_render", "dev", "plan_s"),
    }
    return [{"target": name, "limit": limit, "value": measured[name],
             "met": None if measured[name] is None else measured[name] <= limit}
            for name, limit in TARGETS.items()]


def fmt(value, digits=2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(headers: list, rows: list) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_tables(results: dict) -> str:
    out = [f"# intrexx-exchange benchmark ({results['meta']['mode']}, {results['meta']['started']})", ""]
    if "errors" in results and results["errors"]:
        out += ["**Errors:** " + "; ".join(f"{k}: {v}" for k, v in results["errors"].items()), ""]
    evaluation = results.get("evaluation")
    if evaluation:
        out += ["## 1. Program evaluation under the simulated tenant (whole process, median)", "",
                f"Floor creates the product's resources with identical inputs: "
                f"{evaluation['equivalence']['identical']}. Proposal P1's resolver returns the same outputs: "
                f"{evaluation['equivalence']['walk_outputs_same_result']}.", ""]
        out.append(table(
            ["portals", "reps", "product s", "floor s", "ratio (wall)", "product eval s", "floor eval s",
             "ratio (eval)", "resources"],
            [[n, s["reps"], s["product_wall_s"], s["floor_wall_s"], s["ratio_wall"], s["product_eval_s"],
              s["floor_eval_s"], s["ratio_eval"], f"{s['resources']} / {s['floor_resources']}"]
             for n, s in evaluation["sizes"].items()]))
        growth = evaluation.get("growth_40_400")
        if growth:
            out += ["", f"Growth t400/t40: product {fmt(growth['product'])}, floor {fmt(growth['floor'])}, "
                        f"product/floor {fmt(growth['ratio'])}."]
        out.append("")
    resources = results.get("resources")
    if resources:
        out += ["## 2. Resources, Graph writes and dependency depth per portal (product / minimum)", ""]
        out.append(table(["profile", "resources", "consent objects", "Graph writes", "depth", "components",
                          "invokes per stack"],
                         [[name, f"{r['resources']} / {r['min_resources']}", f"{r['consent']} / {r['min_consent']}",
                           f"{r['graph_writes']} / {r['min_graph_writes']}", f"{r['depth']} / {r['min_depth']}",
                           r["components"], r["invokes_per_stack"]] for name, r in resources["profiles"].items()]))
        out += ["", "Graph writes per created resource (model of the azuread provider's create path): "
                + ", ".join(f"{k} {v}" for k, v in resources["graph_writes_model"].items()) + ".", ""]
    verify = results.get("verify")
    if verify:
        h, r = verify["healthy"], verify["replication"]
        out += ["## 3. verify against the loopback OpenID provider", "",
                table(["measure", "value"], [
                    [f"verify, {h['portals']} healthy portals (s)", h["verify_s"]],
                    [f"bare MSAL acquire_token_for_client, same clients, {h['workers']} threads (s)", h["msal_s"]],
                    ["ratio verify / bare MSAL (median of pairs)", h["ratio"]],
                    [f"notice latency after a {r['delay_s']:g} s replication delay ends, median / max (s)",
                     f"{fmt(r['latency_median_s'])} / {fmt(r['latency_max_s'])}"],
                    ["attempts until success (median); HTTP requests per attempt",
                     f"{fmt(r['attempts_median'], 1)}; {fmt(r['http_requests_per_attempt'], 1)}"],
                    ["shortest gap between one client's token requests, provider log (1 ms clock) (s)",
                     fmt(r["min_gap_s"], 3)],
                    ["the same, as sent (client clock) (s)", fmt(r["client_min_gap_s"], 3)],
                ]), ""]
    plan = results.get("plan_render")
    if plan:
        large, dev = plan["large"], plan["dev"]
        out += ["## 4. plan and render", "",
                table(["measure", "seconds"], [
                    [f"plan+render child process, {large['portals']} portals (wall)", large["wall_s"]],
                    ["  plan_stack (evaluate)", large["plan_evaluate_s"]],
                    ["  Plan.as_dict", large["plan_as_dict_s"]],
                    ["  render placeholders (plan's build/)", large["plan_render_s"]],
                    ["  parse_outputs", large["parse_outputs_s"]],
                    [f"  render_all, {large['files']} files", large["render_s"]],
                    ["`python -m intrexx_connector plan --stack dev`, warm", dev["plan_s"]],
                    ["  floor: `python -c 'import pulumi, pulumi_azuread'`", dev["imports_s"]],
                ]), ""]
    if evaluation and results["meta"]["large"] in evaluation["sizes"]:
        s = evaluation["sizes"][results["meta"]["large"]]
        out += [f"## 5. Peak resident memory at {results['meta']['large']} portals (ru_maxrss of the child)", "",
                table(["product MB", "floor MB", "ratio", "plan --stack dev MB"],
                      [[s["product_maxrss_mb"], s["floor_maxrss_mb"], s["product_maxrss_mb"] / s["floor_maxrss_mb"],
                        plan["dev"]["plan_maxrss_mb"] if plan else None]]), ""]
    profile = results.get("profile")
    if profile:
        main = profile["main_thread"]
        out += [f"## Profile: {profile['portals']}-portal evaluation (cProfile, main thread; "
                f"{fmt(profile['profiled_eval_s'])} s profiled)", "",
                "Time per phase, unprofiled (median):", "",
                table(["program", "run __main__.py s", "drain registrations s", "resolve exports s"],
                      [[name, ph["program_s"], ph["drain_s"], ph["outputs_s"]]
                       for name, ph in profile["phases"].items()]), "",
                "Main-thread self time by where the code lives:", "",
                table(["where", "self s", "share"], [[k, v, f"{100 * v / main['total_s']:.0f}%"]
                                                     for k, v in main["by_category"].items()]), "",
                "Top functions of our code by cumulative time (main thread):", "",
                table(["function", "calls", "self s", "cumulative s"],
                      [[t["function"], t["calls"], f"{t['tottime_s']:.3f}", f"{t['cumtime_s']:.3f}"]
                       for t in main["top_ours"]]), ""]
        if profile.get("worker_threads"):
            out += ["Worker threads (mock monitor and simulated tenant), top of our code: "
                    + "; ".join(f"{t['function']} {t['cumtime_s']:.2f} s" for t in
                                profile["worker_threads"]["top_ours"][:3])
                    + " (worker times include waits for the GIL).", ""]
    experiments = results.get("experiments")
    if experiments:
        out += ["## What-if experiments for the proposals (whole process, median; ratios are medians of pairs)", ""]
        rows = []
        for n, by_name in experiments.items():
            for name, e in by_name.items():
                if name != "reps":
                    rows.append([n, by_name["reps"], name, e["wall_s"], e["eval_s"], e["ratio_to_floor_wall"],
                                 e["ratio_to_floor_p1_wall"]])
        out += [table(["portals", "reps", "variant", "wall s", "eval s", "/ floor", "/ floor+P1"], rows), ""]
    out += ["## Targets", "",
            table(["target", "limit", "measured", "met"],
                  [[t["target"], t["limit"], fmt(t["value"], 3), {True: "yes", False: "**no**", None: "n/a"}[t["met"]]]
                   for t in results["targets"]]), ""]
    return "\n".join(out)


# Driver ------------------------------------------------------------------------------------------------------

MEASUREMENTS = (
    ("evaluation", measure_evaluation),
    ("resources", measure_resources),
    ("verify", measure_verify),
    ("plan_render", measure_plan_render),
    ("profile", measure_profile),
    ("experiments", measure_experiments),
)


def run(params: dict, mode: str, only: tuple = (), progress=lambda line: None) -> dict:
    started = time.perf_counter()
    results = {"meta": {"mode": mode, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "python": platform.python_version(), "machine": platform.machine(),
                        "cpus": os.cpu_count(), "large": params["large"], "params": params},
               "errors": {}}
    for name, measure in MEASUREMENTS:
        if only and name not in only:
            continue
        begun = time.perf_counter()
        progress(f"{name} ...")
        try:
            results[name] = measure(params)
        except Exception as error:  # noqa: BLE001 one failed measurement must not hide the others
            results["errors"][name] = f"{type(error).__name__}: {error}"
        progress(f"{name}: {time.perf_counter() - begun:.1f} s")
    results["targets"] = targets(results)
    results["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    return results


def run_quick(out: Path | None = None, progress=lambda line: None, only: tuple = ()) -> dict:
    """The smoke run (`--quick`): every measurement at toy sizes (1 and 10 portals, 2 repetitions, 3 portals for
    verify), about 30 s. Writes `out` (default bench/results/quick.json) and the profile beside it, nothing else
    in the tree. Returns the results: `results["errors"]` is empty when every measurement ran."""
    out = Path(out or RESULTS_DIR / "quick.json")
    results = run({**QUICK, "results_dir": str(out.parent)}, "quick", only, progress)
    write(results, out)
    return results


def write(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run at toy sizes (< 60 s)")
    parser.add_argument("--only", action="append", choices=[name for name, _ in MEASUREMENTS],
                        help="run only this measurement (repeatable)")
    parser.add_argument("--out", type=Path, help="results file (default bench/results/latest.json, "
                                                 "--quick: bench/results/quick.json)")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def progress(line):
        print(f"[bench {time.perf_counter() - started:6.1f} s] {line}", file=sys.stderr, flush=True)

    only = tuple(args.only or ())
    if args.quick:
        out = args.out or RESULTS_DIR / "quick.json"
        results = run_quick(out, progress, only)
    else:
        out = args.out or RESULTS_DIR / "latest.json"
        results = run({**FULL, "results_dir": str(out.parent)}, "full", only, progress)
        write(results, out)
    print(render_tables(results))
    print(f"results: {out} ({results['meta']['seconds']} s)")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
