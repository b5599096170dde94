"""`python -m fsd.sim --scenario FILE`."""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from fsd.sim.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
