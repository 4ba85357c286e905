import sys

from curalog.cli.main import main

sys.exit(main())
