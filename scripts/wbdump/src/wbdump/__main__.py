"""python3 -m wbdump: the `wbdump` command."""
import sys

from .cli import main

sys.exit(main())
