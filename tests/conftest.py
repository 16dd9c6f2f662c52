"""pytest configuration: the loopback OpenID provider fixture lives in idp_fixture.py; helpers in helpers.py."""

from hypothesis import settings

pytest_plugins = ["idp_fixture"]

# No per-example deadline: on a loaded 2-core CI machine a slow example is not a failure (speed targets live in
# `make bench`, never in tests).
settings.register_profile("intrexx-exchange", deadline=None)
settings.load_profile("intrexx-exchange")
