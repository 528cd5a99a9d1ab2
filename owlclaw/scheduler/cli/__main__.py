import sys

from owlclaw.scheduler.cli import main

sys.exit(main())
