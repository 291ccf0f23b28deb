"""The pure-Python core: no Qt here, so the CLI and the REST service start fast and headless."""
