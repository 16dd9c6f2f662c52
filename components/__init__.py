"""Building blocks of the intrexx-exchange Pulumi program.

The modules without a Pulumi import (names, clouds, catalogue, rotation, config) are shared with the
post-deploy step `intrexx_connector`, which must start fast and never needs the Pulumi runtime.
"""
