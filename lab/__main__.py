from __future__ import annotations

from lab.entry import main

raise SystemExit(main())
