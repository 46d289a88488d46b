"""``python -m salotto.clients.tk``: the same as ``salotto gui``."""

from salotto.clients.tk.app import main

raise SystemExit(main())
