import sys

from curalog.cli.program import main

sys.exit(main())
