import sys

from ftaudit.cli import main

sys.exit(main())
