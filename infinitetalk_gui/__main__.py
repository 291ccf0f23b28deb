from infinitetalk_gui.cli import main

raise SystemExit(main())
