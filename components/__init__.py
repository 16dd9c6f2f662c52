"""Building blocks of the intrexx-exchange Pulumi program.

Only `portal` (the PortalRegistration component), `program` (`build` and `read_settings`) and `tenant` (the
deploying tenant's invokes) import Pulumi. Every other module here (catalogue, clouds, config, contract, ews,
facts, output_checks, refresh_tokens, rotation, stack_file, text, today, urls) is plain Python, shared with the
post-deploy step `intrexx_connector`, which must start fast and never needs the Pulumi runtime.
"""
