"""The benchmark's child process: one measurement per process, so Pulumi's global state and the import cost are
the same for every sample. bench/run.py starts it as `venv/bin/python bench/child.py <mode> ...` and reads one
JSON document from its stdout.

Modes:
  eval        --program product|floor --portals N   one evaluation under the simulated tenant, and its phases
  resources                                         resources and invokes of one portal per access profile
  equivalence --portals N                           the floor's recorded resources against the product's
  outputs     --portals N --out FILE                stack outputs (with secrets) of the verify mix, for verify
  plan-render --portals N --workdir DIR             plan_stack, Plan.as_dict and render for N portals
  profile     --program product|floor --portals N --out FILE   cProfile of one evaluation, every thread
  bare-msal   --out OUTPUTS --authority ORIGIN            the floor of `verify` as a command: read the outputs,
                                                          one client credentials token per portal with MSAL
"""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
for path in (ROOT, BENCH_DIR):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

TODAY = date(2026, 11, 24)  # as the tests: before EWS's shutdown, so every profile is valid
STACK = "bench"
NAMESPACE = "intrexx-exchange"
SCOPE_GROUP = "0b7f6a2e-4c1d-4e8f-9a3b-2d5c6e7f8a9b"

# api x access profiles of measurement 2: the portal entry's extra keys.
USERS_PATH = "service/oauth2/token/D2A7C1E0B9F84A6C3E5D7F9A1B3C5E7F9A1B3C5D"
# connector x access profiles of measurement 2: the portal entry's extra keys.
PROFILES = {
    "exchange/delegated": {},
    "m365/delegated": {"connector": "m365", "redirectPaths": [USERS_PATH], "publicClientFlows": True},
    "m365/application": {"connector": "m365", "access": "application"},
    "m365/application+mailboxScope": {
        "connector": "m365",
        "access": "application",
        "mailboxScope": {"groupId": SCOPE_GROUP},
    },
}
# The portals verify is measured on, round robin: every token shape verify handles.
VERIFY_MIX = ("exchange/delegated", "m365/delegated", "m365/application", "m365/application+mailboxScope")


def default_portals(count: int) -> list[dict]:
    """`count` default portals (the Exchange connector): the shape the floor program reproduces."""
    return [{"name": f"p{i:04d}", "baseUrl": f"https://intrexx{i}.example.com/portal"} for i in range(count)]


def mixed_portals(count: int) -> list[dict]:
    return [{**portal, **PROFILES[VERIFY_MIX[i % len(VERIFY_MIX)]]} for i, portal in enumerate(default_portals(count))]


def _evaluate(program: str, portals: list[dict]):
    """One evaluation with the product's harness. The product's time includes checking the configuration; the
    floor's does not (it has no validation), so its settings are made before the clock starts."""
    from floor_program import floor_build

    from components.config import parse_stack_config
    from intrexx_connector.simulation import evaluate

    def settings():
        return parse_stack_config({"portals": portals}, STACK, TODAY, "global")

    if program == "floor":
        floor_settings = settings()
        return _checked(program, evaluate(floor_settings, program=floor_build))
    return _checked(program, evaluate(settings()))


def _checked(program: str, evaluation):
    if (
        evaluation.unknown_outputs
        or set(evaluation.outputs) != {"portals", "clientSecrets"}
        or evaluation.secret_outputs != {"clientSecrets"}
    ):
        raise SystemExit(
            f"{program}: outputs {set(evaluation.outputs)}, unknown {evaluation.unknown_outputs}, "
            f"secret {evaluation.secret_outputs}"
        )
    return evaluation


def clock_phases() -> dict:
    """Marks the phase boundaries of the product's own harness, intrexx_connector.simulation._evaluate, without
    copying it: it calls the program function (registration), then resolves the exports, which waits for every
    registration, inside pulumi.runtime.test, which drains the remaining RPCs before it returns."""
    import pulumi.runtime

    import intrexx_connector.simulation as simulation

    marks = {}
    harness, run_test = simulation._evaluate, pulumi.runtime.test

    def timed_harness(evaluation, settings, program):
        def timed_program(arguments):
            marks["start"] = time.perf_counter()
            try:
                return program(arguments)
            finally:
                marks["ran"] = time.perf_counter()

        harness(evaluation, settings, timed_program)
        marks["drained"] = time.perf_counter()

    def timed_test(function):
        async def timed(*args, **kwargs):
            try:
                return await function(*args, **kwargs)
            finally:
                marks["resolved"] = time.perf_counter()

        return run_test(timed)

    simulation._evaluate, pulumi.runtime.test = timed_harness, timed_test
    return marks


def mode_eval(args) -> dict:
    import pulumi  # noqa: F401  (counted in startup_s: the product and the floor both need it)
    import pulumi_azuread  # noqa: F401

    marks = clock_phases()
    imported = time.perf_counter()
    evaluation = _evaluate(args.program, default_portals(args.portals))
    done = time.perf_counter()
    return {
        "program": args.program,
        "portals": args.portals,
        "startup_s": imported - STARTED,
        "eval_s": done - imported,
        "program_s": marks["ran"] - marks["start"],
        "outputs_s": marks["resolved"] - marks["ran"],
        "drain_s": marks["drained"] - marks["resolved"],
        "resources": len(evaluation.tenant.resources),
        "calls": len(evaluation.tenant.calls),
    }


def mode_resources(args) -> dict:
    result = {}
    for profile, extra in PROFILES.items():
        evaluation = _evaluate("product", [{"name": "bench", "baseUrl": "https://intrexx.example.com/portal", **extra}])
        result[profile] = {
            "resources": [
                {
                    "type": r.type,
                    "name": r.name,
                    "id": r.id,
                    "inputs": r.inputs,
                    "state": {k: v for k, v in r.state.items() if isinstance(v, str)},
                }
                for r in evaluation.tenant.resources
            ],
            "calls": [c["token"] for c in evaluation.tenant.calls],
        }
    return result


def mode_equivalence(args) -> dict:
    """Same (type, name, inputs) for every non-component resource: then the floor does the product's Entra work."""
    recorded, exported = {}, {}
    for program in ("product", "floor"):
        evaluation = _evaluate(program, default_portals(args.portals))
        recorded[program] = {
            (r.type, r.name): r.inputs for r in evaluation.tenant.resources if not r.type.startswith(f"{NAMESPACE}:")
        }
        exported[program] = _without_random_values(evaluation.outputs)
    product, floor = recorded["product"], recorded["floor"]
    differing = sorted(
        f"{name}.{key}"
        for (typ, name), inputs in product.items()
        if (typ, name) in floor
        for key in set(inputs) | set(floor[(typ, name)])
        if inputs.get(key) != floor[(typ, name)].get(key)
    )
    return {
        "portals": args.portals,
        "product_resources": len(product),
        "floor_resources": len(floor),
        "only_product": sorted(n for _, n in set(product) - set(floor)),
        "only_floor": sorted(n for _, n in set(floor) - set(product)),
        "differing_inputs": differing[:20],
        "identical": product == floor,
        "same_outputs": exported["product"] == exported["floor"],
    }


def _without_random_values(outputs: dict) -> dict:
    """The outputs with what the simulated tenant draws at random (secret values and their key ids) left out."""
    random_fields = ("secretKeyId", "previousSecretKeyId")
    portals = {
        name: {key: value for key, value in entry.items() if key not in random_fields}
        for name, entry in outputs["portals"].items()
    }
    return {"portals": portals, "clientSecrets": sorted(outputs["clientSecrets"])}


def mode_outputs(args) -> dict:
    evaluation = _evaluate("product", mixed_portals(args.portals))
    Path(args.out).write_text(json.dumps(evaluation.outputs), encoding="utf-8")
    return {"portals": args.portals, "out": args.out}


def mode_plan_render(args) -> dict:
    """What `plan` does for N portals, timed by step; then `render` from the outputs with real secrets."""
    import yaml

    from intrexx_connector.plan import plan_stack
    from intrexx_connector.render import render_all
    from intrexx_connector.stack_outputs import parse_outputs

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"Pulumi.{STACK}.yaml").write_text(
        yaml.safe_dump({"config": {f"{NAMESPACE}:portals": mixed_portals(args.portals)}}), encoding="utf-8"
    )
    t0 = time.perf_counter()
    plan = plan_stack(STACK, TODAY, workdir)
    t1 = time.perf_counter()
    document = plan.as_dict()
    t2 = time.perf_counter()
    render_all(plan.portal_outputs(), workdir / "build-plan")
    t3 = time.perf_counter()
    portals = parse_outputs(json.dumps(plan.evaluation.outputs))
    t4 = time.perf_counter()
    render_all(portals, workdir / "build-render")
    t5 = time.perf_counter()
    return {
        "portals": args.portals,
        "plan_evaluate_s": t1 - t0,
        "plan_as_dict_s": t2 - t1,
        "plan_render_s": t3 - t2,
        "parse_outputs_s": t4 - t3,
        "render_s": t5 - t4,
        "files": sum(1 for p in (workdir / "build-render").rglob("*") if p.is_file()),
        "plan_resources": document["resources"],
    }


def mode_profile(args) -> dict:
    """cProfile of one evaluation in every thread: Pulumi sends each registration through a thread pool,
    where the simulated tenant runs, and a profiler only sees the thread that enabled it."""
    import cProfile
    import pstats
    import threading

    import pulumi  # noqa: F401
    import pulumi_azuread  # noqa: F401

    import intrexx_connector.simulation  # noqa: F401

    profilers, lock = [], threading.Lock()

    def start_in_new_thread(frame, event, arg):  # the first profile event of each new thread
        profiler = cProfile.Profile()
        with lock:
            profilers.append(profiler)
        profiler.enable()  # replaces this hook for the thread

    main = cProfile.Profile()
    threading.setprofile(start_in_new_thread)
    t0 = time.perf_counter()
    main.enable()
    _evaluate(args.program, default_portals(args.portals))
    main.disable()
    elapsed = time.perf_counter() - t0
    threading.setprofile(None)
    pstats.Stats(main).dump_stats(f"{args.out}.main")
    for profiler in profilers:
        profiler.create_stats()
    if profilers:
        pstats.Stats(*profilers).dump_stats(f"{args.out}.workers")
    return {
        "program": args.program,
        "portals": args.portals,
        "profiled_eval_s": elapsed,
        "worker_threads": len(profilers),
        "main": f"{args.out}.main",
        "workers": f"{args.out}.workers" if profilers else None,
    }


def mode_bare_msal(args) -> dict:
    """What `intrexx-connector verify --outputs F --authority-host O` must do at least, as a process of its own:
    read the outputs file, then get a token per portal with MSAL in as many threads as verify uses (the CA comes
    from REQUESTS_CA_BUNDLE, as for the product)."""
    from concurrent.futures import ThreadPoolExecutor

    import msal
    import requests

    document = json.loads(Path(args.out).read_text(encoding="utf-8"))
    secrets = document["clientSecrets"]
    session = requests.Session()

    def token(name: str, portal: dict) -> bool:
        app = msal.ConfidentialClientApplication(
            portal["clientId"],
            client_credential=secrets[name],
            authority=f"{args.authority}/{portal['tenantId']}",
            instance_discovery=False,
            http_client=session,
            token_cache=msal.TokenCache(),
        )
        return "access_token" in app.acquire_token_for_client(scopes=[f"{portal['resource']}/.default"])

    portals = document["portals"]
    with ThreadPoolExecutor(max_workers=min(8, len(portals))) as pool:
        ok = list(pool.map(token, portals, portals.values()))
    if not all(ok):
        raise SystemExit("bare MSAL: a portal got no token")
    return {"portals": len(portals)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "mode", choices=("eval", "resources", "equivalence", "outputs", "plan-render", "profile", "bare-msal")
    )
    parser.add_argument("--program", choices=("product", "floor"), default="product")
    parser.add_argument("--portals", type=int, default=1)
    parser.add_argument("--out")
    parser.add_argument("--workdir")
    parser.add_argument("--authority")
    args = parser.parse_args()
    json.dump(globals()[f"mode_{args.mode.replace('-', '_')}"](args), sys.stdout, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
