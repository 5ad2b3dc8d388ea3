"""python -m cbuf.cli: the cbuf command."""
import sys

from . import main

sys.exit(main())
