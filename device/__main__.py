"""``python -m device`` is the ``edgevoice`` command."""

from device.cli import main

raise SystemExit(main())
