"""Settings for the whole suite."""

from hypothesis import HealthCheck, settings

# A property is about correctness, not speed: a slow example on a loaded 2-core CI machine
# must not fail the suite (speed targets live in bench/).
settings.register_profile("evb", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("evb")
