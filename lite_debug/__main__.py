"""``python -m lite_debug`` is the ``lite-debug`` command."""

from .cli import main

raise SystemExit(main())
