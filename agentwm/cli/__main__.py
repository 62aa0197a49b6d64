"""``python -m agentwm.cli``: the ``agentwm`` command."""

from agentwm.cli import main

raise SystemExit(main())
