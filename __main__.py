"""intrexx-exchange: Entra ID registrations that connect Intrexx portals to Exchange Online.

Reads the stack configuration, calls the program function, exports `portals` and `clientSecrets`.
"""

import pulumi

from components.config import ConfigError
from components.contract import CLIENT_SECRETS, PORTALS
from components.program import build, read_settings
from components.stack_file import StackFileError

try:
    settings = read_settings()
except (ConfigError, StackFileError) as error:
    # RunError ends the program with the message alone, without Pulumi's traceback of the program.
    raise pulumi.RunError(str(error)) from None

exports = build(settings)
pulumi.export(PORTALS, exports.portals)
pulumi.export(CLIENT_SECRETS, exports.client_secrets)
