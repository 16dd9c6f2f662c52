"""The errors of the post-deploy step. Only `cli` catches them, prints `Name: message` and picks the exit code.

    ConnectorError                 base; exit 2 unless a subclass says otherwise
    +-- UsageError                 bad arguments, or a portal name that does not exist
    +-- OutputsError               the stack outputs are missing, unreadable, incomplete or hide their secrets
    +-- FileError                  a file to read or merge is missing or malformed (om.cfg); nothing was written
    +-- CheckFailed                exit 1: a check ran and failed (verify, status)
        +-- TokenError             Entra (or the identity provider) refused a token; carries the AADSTS code
        |                          and one line of guidance
        +-- AuthorityError         the identity provider asked for what verify refuses (a request to another
        |                          host, a redirect) or answered in a shape the protocol does not allow
        +-- RefusedByTenant        plan: the simulated tenant refuses what Entra would refuse

components.config.ConfigError (bad stack configuration) is reported by `plan` the same way, with exit 2.
No message ever contains a client secret (verify scrubs what an identity provider echoes, see secrets.py).
"""


class ConnectorError(Exception):
    exit_code = 2


class UsageError(ConnectorError):
    pass


class OutputsError(ConnectorError):
    pass


class FileError(ConnectorError):
    pass


class CheckFailed(ConnectorError):
    exit_code = 1


class TokenError(CheckFailed):
    def __init__(self, message: str, error: str = "", codes: tuple = (), retryable: bool = False):
        super().__init__(message)
        self.error = error
        self.codes = tuple(codes)
        self.retryable = retryable


class RefusedByTenant(CheckFailed):
    """`plan`: the configuration passed validation, but Entra would refuse what the program asks for."""


class AuthorityError(CheckFailed):
    pass
