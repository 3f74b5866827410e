import sys

from ftaudit.cli import main

if __name__ == "__main__":
    sys.exit(main())
