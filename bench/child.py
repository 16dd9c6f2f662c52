"""The benchmark's child process: one measurement per process, so Pulumi's global state and the import cost are
the same for every sample. bench/run.py starts it as `venv/bin/python bench/child.py <mode> ...` and reads one
JSON document from its stdout.

Modes:
  eval        --program product|floor --portals N   time one evaluation under the simulated tenant
  phases      --program product|floor --portals N   the same, split: run the program, drain, resolve exports
  resources                                         resources, writes and dependency depth per access profile
  equivalence --portals N                           the floor's recorded resources against the product's
  outputs     --portals N --out FILE                stack outputs (with secrets) of the verify mix, for verify
  plan-render --portals N --workdir DIR             plan_stack, Plan.as_dict and render for N portals
  profile     --program product|floor --portals N --out FILE   cProfile of one evaluation, every thread

BENCH_EXPERIMENT=name[,name] applies what-if monkeypatches (see EXPERIMENTS) in eval, phases and profile.
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
PROFILES = {
    "graph/delegated": {},
    "graph/application": {"access": "application"},
    "graph/application+mailboxScope": {"access": "application", "mailboxScope": {"groupId": SCOPE_GROUP}},
    "ews/delegated": {"api": "ews"},
    "ews/application": {"api": "ews", "access": "application"},
    "ews/application+mailboxScope": {"api": "ews", "access": "application",
                                     "mailboxScope": {"groupId": SCOPE_GROUP}},
}
# The portals verify is measured on, round robin: every token shape verify handles.
VERIFY_MIX = ("graph/delegated", "graph/application", "ews/application", "graph/application+mailboxScope")


def default_portals(count: int) -> list[dict]:
    """`count` default portals (graph, delegated): the shape the floor program reproduces."""
    return [{"name": f"p{i:04d}", "baseUrl": f"https://intrexx{i}.example.com/portal"} for i in range(count)]


def mixed_portals(count: int, profiles=VERIFY_MIX) -> list[dict]:
    return [{**portal, **PROFILES[profiles[i % len(profiles)]]} for i, portal in enumerate(default_portals(count))]


def config_of(portals: list[dict]) -> dict:
    return {f"{NAMESPACE}:portals": json.dumps(portals)}


# What-if experiments for the report's proposals: monkeypatches applied in this child only, never to the files.
EXPERIMENTS = {}


def experiment(function):
    EXPERIMENTS[function.__name__.replace("_", "-")] = function
    return function


@experiment
def lean_component_outputs():
    """PortalRegistration registers only {clientId} as its outputs instead of the whole summary too."""
    import pulumi

    from components.portal import PortalRegistration

    def register_outputs(self, outputs):
        pulumi.ComponentResource.register_outputs(self, {"clientId": outputs["clientId"]})

    PortalRegistration.register_outputs = register_outputs


@experiment
def walk_outputs():
    """evaluate() resolves the exports by walking them (awaiting each nested Output) instead of
    Output.from_input, which wraps every leaf and key of every `portals` entry in an Output of its own."""
    import components.simulation as simulation

    def patched(evaluation, config, stack, today, project_dir):
        timed_evaluate(evaluation, config, stack, today, project_dir, resolver="walk")

    simulation._evaluate = patched


def _apply_experiments() -> list[str]:
    import os

    names = [n for n in os.environ.get("BENCH_EXPERIMENT", "").split(",") if n]
    for name in names:
        EXPERIMENTS[name]()
    return names


def _evaluate(program: str, portals: list[dict]):
    from components.simulation import evaluate
    from floor_program import program_dir

    evaluation = evaluate(config_of(portals), STACK, TODAY, project_dir=program_dir(program))
    if evaluation.unknown_outputs or set(evaluation.outputs) != {"portals", "clientSecrets"}:
        raise SystemExit(f"{program}: outputs did not resolve: {evaluation.unknown_outputs}")
    return evaluation


async def walk(value):
    """(plain value, known, secret) of an export, awaiting nested Outputs without creating new ones."""
    import pulumi

    if isinstance(value, pulumi.Output):
        known, secret = await value.is_known(), await value.is_secret()
        inner, inner_known, inner_secret = await walk(await value.future())
        return inner, known and inner_known, secret or inner_secret
    if isinstance(value, (list, tuple, dict)):
        keys = list(value) if isinstance(value, dict) else range(len(value))
        parts = [await walk(value[k]) for k in keys]
        plain = {k: p[0] for k, p in zip(keys, parts)} if isinstance(value, dict) else [p[0] for p in parts]
        return plain, all(p[1] for p in parts), any(p[2] for p in parts)
    return value, True, False


def timed_evaluate(evaluation, config, stack, today, project_dir, resolver="from_input") -> dict:
    """components.simulation._evaluate step by step, with a clock between the steps: run the program, drain the
    registrations, resolve the exports. Mirrors the product's harness; `resolver="walk"` is proposal P1."""
    import logging
    import os
    import runpy

    import pulumi
    from pulumi.runtime.stack import wait_for_rpcs
    from pulumi.runtime.sync_await import _sync_await

    import components.simulation as simulation
    from components.today import TODAY_VARIABLE

    logger = logging.getLogger(f"{simulation.PROJECT}.simulation")
    logger.propagate = False
    handler = simulation._Collect(evaluation.warnings)
    logger.addHandler(handler)
    os.environ[TODAY_VARIABLE] = today.isoformat()
    try:
        pulumi.runtime.set_mocks(evaluation.tenant, project=simulation.PROJECT, stack=stack, preview=False,
                                 logger=logger, monitor=simulation._recording_monitor(evaluation.tenant))
        pulumi.runtime.set_all_config(dict(config))
        t0 = time.perf_counter()
        runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__")
        t1 = time.perf_counter()
        _sync_await(wait_for_rpcs())
        t2 = time.perf_counter()
        for name, value in pulumi.runtime.get_root_resource().outputs.items():
            if resolver == "walk":
                plain, known, secret = _sync_await(walk(value))
            else:
                output = pulumi.Output.from_input(value)
                known = _sync_await(output.is_known())
                plain = _sync_await(output.future()) if known else None
                secret = _sync_await(output.is_secret())
            if not known:
                evaluation.unknown_outputs.add(name)
                continue
            evaluation.outputs[name] = plain
            if secret:
                evaluation.secret_outputs.add(name)
        t3 = time.perf_counter()
    finally:
        logger.removeHandler(handler)
    return {"program_s": t1 - t0, "drain_s": t2 - t1, "outputs_s": t3 - t2}


def mode_phases(args) -> dict:
    import contextvars

    import components.simulation as simulation
    from floor_program import program_dir

    _apply_experiments()
    evaluation = simulation.Evaluation(simulation.SimulatedTenant(TODAY))
    phases = contextvars.Context().run(timed_evaluate, evaluation, config_of(default_portals(args.portals)), STACK,
                                       TODAY, program_dir(args.program))
    assert not evaluation.unknown_outputs and set(evaluation.outputs) == {"portals", "clientSecrets"}
    assert evaluation.secret_outputs == {"clientSecrets"}, evaluation.secret_outputs
    return {"program": args.program, "portals": args.portals, **phases}


def mode_eval(args) -> dict:
    import pulumi  # noqa: F401  (counted in import_s: the product and the floor both need it)
    import pulumi_azuread  # noqa: F401

    import components.simulation  # noqa: F401

    experiments = _apply_experiments()
    imported = time.perf_counter()
    evaluation = _evaluate(args.program, default_portals(args.portals))
    done = time.perf_counter()
    return {"program": args.program, "portals": args.portals, "experiments": experiments,
            "startup_s": imported - STARTED,
            "eval_s": done - imported, "resources": len(evaluation.tenant.resources),
            "calls": len(evaluation.tenant.calls)}


def _record(r) -> dict:
    state = {k: v for k, v in r.state.items() if isinstance(v, str)}
    return {"type": r.type, "name": r.name, "id": r.id, "state": state, "inputs": r.inputs, "parent": r.parent,
            "protect": r.protect}


def mode_resources(args) -> dict:
    result = {}
    for profile, extra in PROFILES.items():
        portal = {"name": "bench", "baseUrl": "https://intrexx.example.com/portal", **extra}
        evaluation = _evaluate("product", [portal])
        result[profile] = {
            "resources": [_record(r) for r in evaluation.tenant.resources],
            "calls": [c["token"] for c in evaluation.tenant.calls],
            "permissions": evaluation.outputs["portals"]["bench"]["permissions"],
        }
    return result


def mode_equivalence(args) -> dict:
    """Same (type, name, inputs) for every non-component resource: then the floor does the product's Entra work."""
    portals = default_portals(args.portals)
    recorded = {}
    for program in ("product", "floor"):
        evaluation = _evaluate(program, portals)
        recorded[program] = {(r.type, r.name): r.inputs for r in evaluation.tenant.resources
                             if not r.type.startswith(f"{NAMESPACE}:")}
    product, floor = recorded["product"], recorded["floor"]
    # Proposal P1 must not change what evaluate() returns (secret key ids are random per run: left out).
    as_is = _evaluate("product", portals)
    walk_outputs()
    walked = _evaluate("product", portals)

    def comparable(evaluation):
        portals = {name: {k: v for k, v in fields.items() if k != "secretKeyId"}
                   for name, fields in evaluation.outputs["portals"].items()}
        return (portals, sorted(evaluation.outputs["clientSecrets"]), evaluation.secret_outputs,
                evaluation.unknown_outputs)
    differing = sorted(f"{name}.{key}" for (typ, name), inputs in product.items() if (typ, name) in floor
                       for key in set(inputs) | set(floor[(typ, name)])
                       if inputs.get(key) != floor[(typ, name)].get(key))
    return {"portals": args.portals, "product_resources": len(product), "floor_resources": len(floor),
            "only_product": sorted(n for _, n in set(product) - set(floor)),
            "only_floor": sorted(n for _, n in set(floor) - set(product)),
            "differing_inputs": differing[:20], "identical": product == floor,
            "walk_outputs_same_result": comparable(as_is) == comparable(walked)}


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

    imported = time.perf_counter()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"Pulumi.{STACK}.yaml").write_text(
        yaml.safe_dump({"config": {f"{NAMESPACE}:portals": mixed_portals(args.portals)}}), encoding="utf-8")
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
    files = sum(1 for p in (workdir / "build-render").rglob("*") if p.is_file())
    return {"portals": args.portals, "startup_s": imported - STARTED, "plan_evaluate_s": t1 - t0,
            "plan_as_dict_s": t2 - t1, "plan_render_s": t3 - t2, "parse_outputs_s": t4 - t3,
            "render_s": t5 - t4, "files": files, "plan_resources": document["resources"]}


def mode_profile(args) -> dict:
    """cProfile of one evaluation in every thread: Pulumi sends each registration through a thread pool,
    where the simulated tenant runs, and a profiler only sees the thread that enabled it."""
    import cProfile
    import pstats
    import threading

    import pulumi  # noqa: F401
    import pulumi_azuread  # noqa: F401

    import components.simulation  # noqa: F401

    _apply_experiments()
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
    workers = None
    for profiler in profilers:
        profiler.create_stats()
        workers = pstats.Stats(profiler) if workers is None else workers.add(profiler)
    if workers is not None:
        workers.dump_stats(f"{args.out}.workers")
    return {"program": args.program, "portals": args.portals, "profiled_eval_s": elapsed,
            "worker_threads": len(profilers), "main": f"{args.out}.main",
            "workers": f"{args.out}.workers" if workers is not None else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("eval", "phases", "resources", "equivalence", "outputs", "plan-render",
                                           "profile"))
    parser.add_argument("--program", choices=("product", "floor"), default="product")
    parser.add_argument("--portals", type=int, default=1)
    parser.add_argument("--out")
    parser.add_argument("--workdir")
    args = parser.parse_args()
    handler = globals()[f"mode_{args.mode.replace('-', '_')}"]
    json.dump(handler(args), sys.stdout, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
