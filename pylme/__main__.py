"""``python -m pylme``: the pylme command line (see pylme.cli)."""
import sys

from pylme.cli import main

sys.exit(main())
