"""Run the policy pack the way the Pulumi engine does, and feed it resources in the engine's shape.

What the engine does, and where it is written (pulumi/pulumi at 3.260-3.272, pulumi/pulumi-policy 1.21.0):

- Start: the Python language host runs `python -u -m pulumi.policy <engine address> <pack folder>` with the pack
  folder as working directory, adding PULUMI_PROJECT, PULUMI_STACK, PULUMI_DRY_RUN, PULUMI_ORGANIZATION and
  PULUMI_CONFIG to the environment (sdk/python/cmd/pulumi-language-python/main.go, RunPlugin; the older
  pulumi-analyzer-policy-python shim passed "." as the folder, pkg/resource/plugin/analyzer_plugin.go). We pass ".".
  `pulumi.policy` (sdk/python/lib/pulumi/policy/__main__.py) only parses the engine address, it never dials it;
  `PolicyPack(...)` serves the Analyzer service on 127.0.0.1:0 and writes the port as the first stdout line
  (pulumi_policy/policy.py). FakeEngine stands behind the address anyway and records any call.
- Calls, in order (analyzer_plugin.go NewPolicyAnalyzer, pkg/engine/update.go): Handshake (UNIMPLEMENTED in the
  Python SDK: the engine falls back), ConfigureStack, GetAnalyzerInfo, Configure with the config reconciled from
  the policies' defaults, schema defaults and the user's file (pkg/resource/analyzer/config.go
  ReconcilePolicyPackConfig), then per resource Remediate and Analyze on the INPUTS (step_generator.go), and
  AnalyzeStack on every resource's OUTPUTS at the end (step_generator.go AnalyzeResources).
- Properties: MarshalProperties(KeepUnknowns, KeepSecrets, SkipInternalKeys) (pkg/resource/plugin/rpc.go):
  a Struct; numbers are doubles; nulls kept; top-level keys starting with "__" dropped; a secret is
  {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": v}; an unknown is a sentinel
  string, for an unknown output always the string one ("04da6b54-80e4-46f7-96ec-b56ff0331ba9").
- Options (analyzer_plugin.go marshalResourceOptions): protect, ignoreChanges, deleteBeforeReplace(+Defined),
  additionalSecretOutputs, aliases, customTimeouts (always set), parent. Provider (marshalProvider): the
  provider resource's urn, type, name and INPUTS; a default provider is named default_<major>_<minor>_<patch>,
  has no parent and takes the stack's `azuread:` config plus "version" as inputs
  (pkg/resource/deploy/default_providers.go, providers/provider.go DefaultName).
- URNs: urn:pulumi:<stack>::<project>::<parent type chain$><type>::<name>, the root stack left out of the chain
  (pkg/resource/deploy/deployment.go generateURN). Pulumi's mock monitor builds component URNs with the stack in
  the chain, so from_recorded() recomputes every URN.
- AnalyzeStack adds parent, dependencies and propertyDependencies (only non-empty ones). The simulator does not
  record dependencies, so from_recorded() derives them the way a program creates them: an input holding another
  resource's computed id, objectId or clientId came from that resource's output.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import os
import queue
import subprocess
import sys
import threading
from concurrent import futures
from dataclasses import dataclass, field, replace
from datetime import date
from importlib.metadata import version
from pathlib import Path

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc, engine_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
PACK_DIR = ROOT / "policy"
PACK_PYTHON = PACK_DIR / "venv" / "bin" / "python"
PROJECT = "intrexx-exchange"
PROVIDER_PACKAGE = "azuread"

SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"  # sdk/go/common/resource/properties.go SigKey
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # ... SecretSig
UNKNOWN_SENTINELS = {  # pkg/resource/plugin/rpc.go Unknown*Value
    "bool": "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",
    "number": "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
    "string": "04da6b54-80e4-46f7-96ec-b56ff0331ba9",
    "array": "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",
    "object": "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",
}
# pulumi_azuread/application_password.py (and service_principal_password.py): additional_secret_outputs=["value"].
ADDITIONAL_SECRET_OUTPUTS = {
    "azuread:index/applicationPassword:ApplicationPassword": ["value"],
    "azuread:index/servicePrincipalPassword:ServicePrincipalPassword": ["value"],
}
# The simulator keeps generated secret values as pulumi Outputs; the pack must never need them.
SECRET_PLACEHOLDER = "simulated-secret-value"
ENGINE_LEVELS = {
    analyzer_pb2.ADVISORY: "advisory",
    analyzer_pb2.MANDATORY: "mandatory",
    analyzer_pb2.DISABLED: "disabled",
    analyzer_pb2.REMEDIATE: "remediate",
}
LEVELS = {name: value for value, name in ENGINE_LEVELS.items()}


# The pack's modules in this interpreter ---------------------------------------------------------------------------


def _module_from(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@functools.cache
def pack_rules():
    """policy/entra_guardrails.py, imported here as the pack imports it (it needs only the standard library, PyYAML,
    ada-url and components/facts.py, which it loads by path), to call its rules directly."""
    return _module_from(PACK_DIR / "entra_guardrails.py", "entra_guardrails")


@functools.cache
def sdk_proxy():
    """pulumi_policy/proxy.py from the pack's venv (standard library only): the unknown-checking proxies the SDK
    wraps every resource's properties in before a policy sees them (pulumi_policy/policy.py, Analyze)."""
    [path] = PACK_DIR.glob("venv/lib/python3*/site-packages/pulumi_policy/proxy.py")
    return _module_from(path, "pulumi_policy_proxy")


# The simulated tenant: the one place this harness reaches it. -----------------------------------------------------


def recorded_resources(stack: str, today: date, portals: list | None = None) -> list:
    """Every resource the simulated tenant records for `Pulumi.<stack>.yaml` (or for these portals)."""
    from helpers import settings_for

    from components.stack_file import load_stack_settings
    from intrexx_connector.simulation import evaluate

    settings = load_stack_settings(stack, ROOT, today) if portals is None else settings_for(portals, stack, today)
    return evaluate(settings).tenant.resources


# Values in the engine's shape -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Secret:
    value: object


@dataclass(frozen=True)
class Unknown:
    kind: str = "string"


def marshal_value(value):
    """One property value as the engine marshals it (rpc.go MarshalPropertyValue), as JSON-like Python."""
    if isinstance(value, Secret):
        return {SECRET_SIG_KEY: SECRET_SIG, "value": marshal_value(value.value)}
    if isinstance(value, Unknown):
        return UNKNOWN_SENTINELS[value.kind]
    if isinstance(value, dict):
        return {str(k): marshal_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [marshal_value(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    raise TypeError(f"cannot marshal {type(value).__name__}")


def marshal_properties(props: dict) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update({k: marshal_value(v) for k, v in props.items() if not str(k).startswith("__")})
    return struct


@dataclass
class EngineResource:
    """A resource as the engine knows it when it calls the analyzer."""

    urn: str
    type: str
    name: str
    inputs: dict
    outputs: dict
    parent: str = ""
    id: str = ""  # the provider's resource id (not sent to analyzers; used to derive dependencies)
    dependencies: list = field(default_factory=list)
    property_dependencies: dict = field(default_factory=dict)  # property -> [URN]
    provider: EngineResource | None = None
    protect: bool = False
    additional_secret_outputs: list = field(default_factory=list)
    custom: bool = True


def _options(resource: EngineResource) -> analyzer_pb2.AnalyzerResourceOptions:
    return analyzer_pb2.AnalyzerResourceOptions(
        protect=resource.protect,
        ignoreChanges=[],
        deleteBeforeReplace=False,
        deleteBeforeReplaceDefined=False,
        additionalSecretOutputs=list(resource.additional_secret_outputs),
        aliases=[],
        customTimeouts=analyzer_pb2.AnalyzerResourceOptions.CustomTimeouts(create=0, update=0, delete=0, read=0),
        parent=resource.parent,
    )


def _provider(resource: EngineResource):
    if resource.provider is None:
        return None
    p = resource.provider
    return analyzer_pb2.AnalyzerProviderResource(
        type=p.type, urn=p.urn, name=p.name, properties=marshal_properties(p.inputs)
    )


def analyze_request(resource: EngineResource) -> analyzer_pb2.AnalyzeRequest:
    """What step_generator.go analyzeAll sends for one resource: its inputs."""
    return analyzer_pb2.AnalyzeRequest(
        type=resource.type,
        properties=marshal_properties(resource.inputs),
        urn=resource.urn,
        name=resource.name,
        options=_options(resource),
        provider=_provider(resource),
    )


def analyzer_resource(resource: EngineResource) -> analyzer_pb2.AnalyzerResource:
    """One entry of AnalyzeStack (step_generator.go AnalyzeResources): its outputs."""
    return analyzer_pb2.AnalyzerResource(
        type=resource.type,
        properties=marshal_properties(resource.outputs),
        urn=resource.urn,
        name=resource.name,
        options=_options(resource),
        provider=_provider(resource),
        parent=resource.parent,
        dependencies=list(resource.dependencies),
        propertyDependencies={
            key: analyzer_pb2.AnalyzerPropertyDependencies(urns=list(urns))
            for key, urns in resource.property_dependencies.items()
            if urns
        },
    )


def analyze_stack_request(resources: list) -> analyzer_pb2.AnalyzeStackRequest:
    return analyzer_pb2.AnalyzeStackRequest(resources=[analyzer_resource(r) for r in resources])


# From the simulator's records ---------------------------------------------------------------------------------------


def engine_urn(stack: str, qualified_type: str, name: str, project: str = PROJECT) -> str:
    return f"urn:pulumi:{stack}::{project}::{qualified_type}::{name}"


def _qualified_type(urn: str) -> str:
    return urn.split("::")[2]


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def _secrets_as_placeholders(value):
    """Outputs the simulator keeps as pulumi Outputs (secret values) become secrets with a placeholder."""
    if type(value).__name__ == "Output" and type(value).__module__.startswith("pulumi"):
        return Secret(SECRET_PLACEHOLDER)
    if isinstance(value, dict):
        return {k: _secrets_as_placeholders(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_secrets_as_placeholders(v) for v in value]
    return value


def _computed_index(resources: list) -> dict:
    """value -> URN of the custom resource that computed it (its id, objectId, clientId)."""
    index = {}
    for resource in resources:
        if not resource.custom or resource.type.startswith("pulumi:"):
            continue
        for value in (resource.id, resource.outputs.get("objectId"), resource.outputs.get("clientId")):
            if isinstance(value, str) and value:
                index[value] = resource.urn
    return index


def _link(resource: EngineResource, computed: dict) -> None:
    """Dependencies as the SDK records them: an input holding another resource's computed value came from it."""
    property_dependencies = {}
    for key, value in resource.inputs.items():
        sources = sorted({computed[s] for s in _strings(value) if s in computed and computed[s] != resource.urn})
        if sources:
            property_dependencies[key] = sources
    resource.property_dependencies = property_dependencies
    resource.dependencies = sorted({u for urns in property_dependencies.values() for u in urns})


def _engine_resource(
    root: EngineResource,
    provider: EngineResource,
    parent: EngineResource | None,
    type_: str,
    name: str,
    inputs: dict,
    state: dict,
    resource_id: str = "",
    protect: bool = False,
):
    parent = parent or root
    stack, project = root.urn.split("::")[0].split(":")[2], root.urn.split("::")[1]
    parent_chain = "" if parent is root else _qualified_type(parent.urn) + "$"
    custom = type_.startswith(f"{PROVIDER_PACKAGE}:")
    outputs = _secrets_as_placeholders({**inputs, **state})
    secret_outputs = ADDITIONAL_SECRET_OUTPUTS.get(type_, [])
    for key in secret_outputs:
        if key in outputs and not isinstance(outputs[key], Secret):
            outputs[key] = Secret(outputs[key])
    return EngineResource(
        urn=engine_urn(stack, parent_chain + type_, name, project),
        type=type_,
        name=name,
        inputs=copy.deepcopy(inputs),
        outputs=outputs,
        parent=parent.urn,
        id=resource_id or "",
        provider=provider if custom else None,
        protect=protect,
        additional_secret_outputs=list(secret_outputs),
        custom=custom,
    )


def from_recorded(recorded: list, stack: str, provider_config: dict | None = None, project: str = PROJECT) -> list:
    """The simulator's records as the engine's resources after an update: stack, default provider, then each
    record with engine URNs, outputs = inputs + what the tenant computed (what a mock returns), secrets marked,
    dependencies derived."""
    root = EngineResource(
        engine_urn(stack, "pulumi:pulumi:Stack", f"{project}-{stack}", project),
        "pulumi:pulumi:Stack",
        f"{project}-{stack}",
        {},
        {},
        custom=False,
    )
    azuread_version = version("pulumi_azuread")
    provider_name = "default_" + azuread_version.replace(".", "_")
    provider_inputs = {**(provider_config or {}), "version": azuread_version}
    provider = EngineResource(
        engine_urn(stack, f"pulumi:providers:{PROVIDER_PACKAGE}", provider_name, project),
        f"pulumi:providers:{PROVIDER_PACKAGE}",
        provider_name,
        provider_inputs,
        dict(provider_inputs),
    )
    resources, by_mock_urn = [root, provider], {}
    for record in recorded:
        parent = by_mock_urn.get(record.parent or "")
        resource = _engine_resource(
            root, provider, parent, record.type, record.name, record.inputs, record.state, record.id, record.protect
        )
        _link(resource, _computed_index(resources))
        if record.urn:
            by_mock_urn[record.urn] = resource
        resources.append(resource)
    return resources


def add_resource(
    resources: list,
    type_: str,
    name: str,
    inputs: dict,
    state: dict | None = None,
    parent: str | None = None,
    resource_id: str = "",
) -> list:
    """A copy of `resources` with one more resource, as if the program had declared it (under the resource named
    `parent`, or at the top), its dependencies derived like from_recorded's."""
    root, provider = resources[0], resources[1]
    parent_resource = next(r for r in resources if r.name == parent) if parent else None
    resource = _engine_resource(root, provider, parent_resource, type_, name, inputs, state or {}, resource_id)
    _link(resource, _computed_index(resources))
    return [*resources, resource]


def without_dependencies(resources: list) -> list:
    """The same resources as a program that hard-codes ids (or imports everything with import_) leaves them: the
    values are known and nothing records where they came from."""
    return [replace(r, dependencies=[], property_dependencies={}) for r in resources]


def as_preview(resources: list, computed_keys: dict) -> list:
    """The same resources as `pulumi preview` of a new stack shows them: what the tenant computes (computed_keys:
    urn -> keys) and every input taken from another resource's output are unknown."""
    previewed = []
    for resource in resources:
        r = replace(resource, inputs=copy.deepcopy(resource.inputs), outputs=copy.deepcopy(resource.outputs))
        for key in resource.property_dependencies:
            r.inputs[key] = Unknown()
            r.outputs[key] = Unknown()
        for key in computed_keys.get(resource.urn, ()):
            r.outputs[key] = Unknown()
        previewed.append(r)
    return previewed


def computed_keys(recorded: list, resources: list) -> dict:
    """urn -> the output keys the tenant computed for that record (its `state`)."""
    by_name = {(r.type, r.name): r.urn for r in resources}
    return {by_name[(rec.type, rec.name)]: list(rec.state) for rec in recorded if (rec.type, rec.name) in by_name}


# The engine's side of the process -----------------------------------------------------------------------------------


class FakeEngine(engine_pb2_grpc.EngineServicer):
    """The engine's gRPC service behind the address given to the pack; records Log calls (the only one a pack
    could make, through pulumi.log), answers everything else UNIMPLEMENTED."""

    def __init__(self):
        self.logs: list = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        engine_pb2_grpc.add_EngineServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def Log(self, request, context):
        self.logs.append((request.severity, request.message))
        return empty_pb2.Empty()

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop(0)


class PackFailedToStart(RuntimeError):
    pass


class PolicyPackProcess:
    """The pack as a child process, started like the engine starts it."""

    def __init__(
        self,
        pack_dir: Path = PACK_DIR,
        python: Path = PACK_PYTHON,
        env: dict | None = None,
        stack: str = "dev",
        dry_run: bool = True,
        timeout: float = 20.0,
    ):
        self.pack_dir, self.python, self.timeout = pack_dir, python, timeout
        self.stack, self.dry_run, self.extra_env = stack, dry_run, env or {}
        self.engine = FakeEngine()
        self.process: subprocess.Popen | None = None
        self.channel = None
        self.stub = None
        self.stderr_lines: list = []
        self.readers: list = []

    def __enter__(self) -> PolicyPackProcess:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        if not self.python.is_file():
            raise PackFailedToStart(
                f"{self.python} is missing: `make test` creates the pack's venv (policy/requirements.txt)"
            )
        self.engine.start()
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env.update(
            {
                "PULUMI_PROJECT": PROJECT,
                "PULUMI_STACK": self.stack,
                "PULUMI_ORGANIZATION": "organization",
                "PULUMI_DRY_RUN": "true" if self.dry_run else "false",
                "PULUMI_CONFIG": "{}",
            }
        )
        env.update(self.extra_env)
        self.process = subprocess.Popen(
            [str(self.python), "-u", "-m", "pulumi.policy", self.engine.address, "."],
            cwd=self.pack_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue = queue.Queue()

        def read_stdout() -> None:
            for line in self.process.stdout:
                lines.put(line)
            lines.put("")  # end of output: the pack has exited

        self.readers = [
            threading.Thread(target=read_stdout, daemon=True),
            threading.Thread(target=lambda: self.stderr_lines.extend(self.process.stderr), daemon=True),
        ]
        for reader in self.readers:
            reader.start()
        first = None
        try:
            first = lines.get(timeout=self.timeout)
            port = int(first.strip())
        except (queue.Empty, ValueError) as error:
            what = f"printed no port within {self.timeout} s ({error!r})"
            if first == "":  # the pack exited before printing its port: wait for its last words
                what = f"exited with code {self.process.wait(timeout=self.timeout)} before printing its port"
                self.readers[1].join(timeout=5)
            self.stop()
            raise PackFailedToStart(f"the pack {what}; stderr: {''.join(self.stderr_lines)[-2000:]}") from None
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(self.channel).result(timeout=self.timeout)
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process is not None:
            for reader in self.readers:
                reader.join(timeout=5)  # both end at EOF, once the process is gone
            for stream in (self.process.stdout, self.process.stderr):
                stream.close()
        self.engine.stop()

    # the engine's calls ----------------------------------------------------------------------------------------

    def handshake(self) -> grpc.StatusCode:
        """The engine tolerates UNIMPLEMENTED here (analyzer_plugin.go NewPolicyAnalyzer)."""
        request = analyzer_pb2.AnalyzerHandshakeRequest(
            engine_address=self.engine.address, root_directory=str(self.pack_dir), program_directory=str(self.pack_dir)
        )
        try:
            self.stub.Handshake(request, timeout=self.timeout)
            return grpc.StatusCode.OK
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
            return error.code()

    def configure_stack(self, project: str = PROJECT, tags: dict | None = None) -> None:
        self.stub.ConfigureStack(
            analyzer_pb2.AnalyzerStackConfigureRequest(
                stack=self.stack,
                project=project,
                organization="organization",
                dry_run=self.dry_run,
                config={},
                config_secret_keys=[],
                tags=tags or {},
            ),
            timeout=self.timeout,
        )

    def info(self) -> analyzer_pb2.AnalyzerInfo:
        return self.stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=self.timeout)

    def configure(self, user_config: dict | None = None) -> dict:
        """Configure as the engine does it: reconciled with the pack's defaults. Returns the config sent."""
        reconciled = reconcile_config(self.info(), user_config or {})
        self.configure_raw(reconciled)
        return reconciled

    def configure_raw(self, config: dict) -> None:
        """Configure with exactly `config` ({policy: {"enforcementLevel": name or absent, "properties": {...}}})."""
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, entry in config.items():
            policy_config = analyzer_pb2.PolicyConfig(
                enforcementLevel=LEVELS[entry.get("enforcementLevel", "advisory")]
            )
            policy_config.properties.update(entry.get("properties") or {})
            request.policyConfig[name].CopyFrom(policy_config)
        self.stub.Configure(request, timeout=self.timeout)

    def analyze(self, resource: EngineResource) -> list:
        request = analyze_request(resource)
        self.stub.Remediate(request, timeout=self.timeout)
        return diagnostics(self.stub.Analyze(request, timeout=self.timeout))

    def analyze_all(self, resources: list) -> list:
        return [d for r in resources for d in self.analyze(r)]

    def analyze_stack(self, resources: list) -> list:
        return diagnostics(self.stub.AnalyzeStack(analyze_stack_request(resources), timeout=self.timeout))


def reconcile_config(info: analyzer_pb2.AnalyzerInfo, user_config: dict) -> dict:
    """pkg/resource/analyzer/config.go: parsePolicyPackConfig (a string is an enforcement level; an object may
    hold "enforcementLevel" and properties), createConfigWithDefaults (each policy's level, schema defaults),
    applyConfig (initialConfig, then the file; "all" sets every level)."""
    result = {}
    for policy in info.policies:
        schema = json_format.MessageToDict(policy.configSchema.properties) if policy.HasField("configSchema") else {}
        defaults = {k: v["default"] for k, v in schema.items() if isinstance(v, dict) and "default" in v}
        result[policy.name] = {"enforcementLevel": ENGINE_LEVELS[policy.enforcementLevel], "properties": defaults}

    def apply(config: dict) -> None:
        parsed = {}
        for name, value in config.items():
            if isinstance(value, str):
                parsed[name] = (value, {})
            else:
                props = dict(value)
                parsed[name] = (props.pop("enforcementLevel", None), props)
        if "all" in parsed and parsed["all"][0]:
            for entry in result.values():
                entry["enforcementLevel"] = parsed["all"][0]
        for name, (level, props) in parsed.items():
            entry = result.setdefault(name, {"enforcementLevel": "advisory", "properties": {}})
            if level:
                entry["enforcementLevel"] = level
            entry["properties"] = {**entry["properties"], **props}

    # convertPolicyConfig reads an initialConfig entry's level as given, 0 (ADVISORY) included: a pack whose
    # initial_config gives only properties makes that policy advisory. This pack sets no initial_config.
    initial = {
        name: {**json_format.MessageToDict(c.properties), "enforcementLevel": ENGINE_LEVELS[c.enforcementLevel]}
        for name, c in info.initialConfig.items()
    }
    apply(initial)
    apply(user_config)
    return result


@dataclass(frozen=True)
class Diagnostic:
    policy: str
    level: str
    urn: str
    message: str
    description: str
    severity: int
    pack: str
    pack_version: str


def diagnostics(response: analyzer_pb2.AnalyzeResponse) -> list:
    return [
        Diagnostic(
            d.policyName,
            ENGINE_LEVELS[d.enforcementLevel],
            d.urn,
            d.message,
            d.description,
            d.severity,
            d.policyPackName,
            d.policyPackVersion,
        )
        for d in response.diagnostics
    ]


SEVERITY_NAMES = {0: "", 1: "low", 2: "medium", 3: "high", 4: "critical"}


def display_type(type_token: str) -> str:
    """sdk/go/common/tokens/tokens.go Type.DisplayName: azuread:index/application:Application ->
    azuread:index:Application."""
    parts = type_token.split(":")
    if len(parts) != 3 or "/" not in parts[1]:
        return type_token
    module, _, file = parts[1].rpartition("/")
    name = parts[2]
    return f"{parts[0]}:{module}:{name}" if name and file == name[0].lower() + name[1:] else type_token


def render_policies(violations: list, pack: str, pack_version: str, local_path: str) -> str:
    """The "Policies:" section of `pulumi preview` (pkg/backend/display/progress.go printPolicies,
    diff.go renderDiffPolicyViolationEvent and policyResourceClause), without colours."""
    order = {"mandatory": 0, "advisory": 1}
    mark = "❌" if any(v.level == "mandatory" for v in violations) else ("⚠️" if violations else "✅")
    lines = ["Policies:", f"    {mark} {pack}@v{pack_version} (local: {local_path})"]
    for v in sorted(violations, key=lambda v: (order.get(v.level, 2), -v.severity, v.policy, v.urn)):
        severity = f" [severity: {SEVERITY_NAMES[v.severity]}]" if v.severity else ""
        clause = f"  ({display_type(v.urn.split('::')[2].split('$')[-1])}: {v.urn.split('::')[-1]})" if v.urn else ""
        lines.append(f"        - [{v.level}]{severity}  {v.policy}{clause}")
        lines.extend("          " + line for line in v.message.rstrip("\n").split("\n"))
    return "\n".join(lines)
