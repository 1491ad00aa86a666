"""`python -m spa` runs the CLI."""
import sys

from spa.cli import main

sys.exit(main())
