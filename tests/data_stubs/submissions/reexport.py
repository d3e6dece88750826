"""A one-line re-export of the reference package: must score nothing."""
from adversarial import *  # noqa: F401,F403
