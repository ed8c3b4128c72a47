"""``python -m pylme``: the pylme command line (see pylme.io.cli)."""
import sys

from pylme.io.cli import main

sys.exit(main())
