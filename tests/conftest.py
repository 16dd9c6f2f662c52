"""pytest configuration: the loopback OpenID provider fixture lives in idp_fixture.py; helpers in helpers.py."""

pytest_plugins = ["idp_fixture"]
