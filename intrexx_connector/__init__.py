"""Post-deploy step: turns the stack outputs into the Intrexx connector configuration and checks it with MSAL."""

__version__ = "0.2.0"
