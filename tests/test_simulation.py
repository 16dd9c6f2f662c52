"""The harness itself: how the program reads its configuration under Pulumi, and the one place that goes below
Pulumi's public testing API (the options monitor), which must say so loudly here if Pulumi changes underneath it,
while `plan` degrades to one warning."""

import contextvars
import json

import pulumi
import pytest
from helpers import TODAY, run_program

from components.config import ConfigError
from components.portal import COMPONENT_TYPE
from components.program import read_settings
from intrexx_connector.simulation import (
    APPLICATION,
    OPTIONS_UNKNOWN,
    SERVICE_PRINCIPAL,
    SimulatedTenant,
    event_loops,
)

HR = {"name": "hr", "baseUrl": "https://intrexx.example.com/hr"}


def test_urns_come_from_the_resource_objects_and_the_options_monitor_still_sees_protect():
    evaluation = run_program([HR, {"name": "ops", "baseUrl": "https://intrexx.example.com/ops"}], protect=True)
    assert evaluation.warnings == [w for w in evaluation.warnings if w != OPTIONS_UNKNOWN], (
        "Pulumi's MockMonitor changed: plan no longer shows protect and aliases (see simulation._options_monitor)"
    )
    components = {r.name: r for r in evaluation.of_type(COMPONENT_TYPE)}
    assert set(components) == {"hr", "ops"}
    for resource in evaluation.tenant.resources:
        assert resource.urn.startswith("urn:pulumi:dev::intrexx-exchange::"), f"no URN for {resource.name}"
        assert resource.urn.endswith(f"::{resource.name}")
        if resource.type == COMPONENT_TYPE:
            continue
        owner = components[resource.name.split("-")[0]]
        assert resource.parent == owner.urn, resource.urn
        assert resource.protect is (resource.type in (APPLICATION, SERVICE_PRINCIPAL)), resource.urn
    assert all(r.import_id == "" for r in evaluation.tenant.resources)


def test_a_pulumi_that_changed_its_testing_monitor_costs_protect_and_aliases_not_the_plan(monkeypatch):
    """The monitor is the one private surface: when it breaks, plan says so in one warning and goes on."""
    import pulumi.runtime.mocks

    class Changed(pulumi.runtime.mocks.MockMonitor):
        """Still what set_mocks uses by default, but no longer open to subclasses."""

        def __init_subclass__(cls, **kwargs):
            raise TypeError("MockMonitor cannot be subclassed any more")

    monkeypatch.setattr(pulumi.runtime.mocks, "MockMonitor", Changed)
    evaluation = run_program([HR], protect=True)
    assert OPTIONS_UNKNOWN in evaluation.warnings
    applications = evaluation.of_type(APPLICATION)
    assert applications and applications[0].urn.endswith("::hr-app") and applications[0].parent
    assert not any(r.protect for r in evaluation.tenant.resources), "unknown, so not shown"


def read_settings_under_pulumi(config: dict, stack: str = "dev"):
    """read_settings as `pulumi up` runs it: the engine's config store, the stack file in the working directory."""

    read = {}

    def run():
        with event_loops():
            pulumi.runtime.set_mocks(SimulatedTenant(TODAY), project="intrexx-exchange", stack=stack, preview=False)
            pulumi.runtime.set_all_config(config)
            # Inside pulumi.runtime.test, which waits for the registrations set_mocks started (the root stack).
            pulumi.runtime.test(lambda: read.update(settings=read_settings()))()
            return read["settings"]

    return contextvars.Context().run(run)


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INTREXX_EXCHANGE_TODAY", TODAY.isoformat())
    monkeypatch.delenv("ARM_ENVIRONMENT", raising=False)
    return tmp_path


def test_read_settings_takes_the_known_keys_from_pulumi_config(project):
    settings = read_settings_under_pulumi(
        {"intrexx-exchange:portals": json.dumps([HR]), "intrexx-exchange:secretRotationDays": "30"}
    )
    assert [p.name for p in settings.portals] == ["hr"]
    assert settings.secret_rotation_days == 30 and settings.stack == "dev" and settings.today == TODAY


def test_read_settings_reports_what_only_the_stack_file_shows(project):
    (project / "Pulumi.dev.yaml").write_text(
        "config:\n"
        "  intrexx-exchange:portals:\n"
        "    - {name: hr, baseUrl: https://intrexx.example.com/hr}\n"
        "  intrexx-exchange:secretRotationDay: 30\n"
        "  environment: test\n"
        "  intrexx-exchang:protect: true\n"
        "  azuread:tenantId: 00000000-0000-0000-0000-000000000000\n"
    )
    with pytest.raises(ConfigError) as caught:
        read_settings_under_pulumi(
            {"intrexx-exchange:portals": json.dumps([HR]), "intrexx-exchange:environment": "test"}
        )
    assert caught.value.problems == [
        "intrexx-exchange:secretRotationDay: unknown key (did you mean 'secretRotationDays'?); known keys: portals, "
        "deployers, environment, cloud, exchangeEndpoint, secretRotationDays, protect, allowRetiredEws",
        "intrexx-exchang:protect: unknown namespace 'intrexx-exchang'; did you mean 'intrexx-exchange:protect'?",
    ]


def test_read_settings_checks_the_azuread_providers_cloud(project):
    with pytest.raises(ConfigError, match="cloud: is 'china' but the azuread provider signs in to 'public'"):
        read_settings_under_pulumi({"intrexx-exchange:portals": json.dumps([HR]), "intrexx-exchange:cloud": "china"})
    settings = read_settings_under_pulumi(
        {
            "intrexx-exchange:portals": json.dumps([HR]),
            "intrexx-exchange:cloud": "china",
            "azuread:environment": "china",
        }
    )
    assert settings.cloud.name == "china"


def test_a_bad_pinned_date_is_a_config_error(project, monkeypatch):
    monkeypatch.setenv("INTREXX_EXCHANGE_TODAY", "2026-13-01")
    with pytest.raises(ConfigError, match=r"INTREXX_EXCHANGE_TODAY: must be a date YYYY-MM-DD"):
        read_settings_under_pulumi({"intrexx-exchange:portals": json.dumps([HR])})
