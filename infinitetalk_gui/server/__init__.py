"""The REST service (``infinitetalk-gui serve``), installed with the ``server`` extra.

Importing this package needs FastAPI and uvicorn: without them it raises ImportError, which
the CLI turns into the install hint. It never imports Qt.
"""

from infinitetalk_gui.server.app import create_app, serve
from infinitetalk_gui.server.config import ServerConfig, load_config

__all__ = ["ServerConfig", "create_app", "load_config", "serve"]
