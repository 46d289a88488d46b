import sys

from salotto.cli import main

sys.exit(main())
