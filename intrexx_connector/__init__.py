"""Post-deploy step: turns the stack outputs into the Intrexx connector configuration and checks it with MSAL."""
