"""Entry script of the frozen app: build.spec freezes this file.

The same executable opens the window with no arguments and runs the CLI subcommands
(``render``, ``check``, ``--smoke``...) with them: both go through ``infinitetalk_gui.cli``.
"""

from infinitetalk_gui._frozen import prepare_frozen_process

prepare_frozen_process()

from infinitetalk_gui.cli import main  # noqa: E402 (streams must be fixed before this import)

raise SystemExit(main())
