"""``python -m mlstack_task <command> ...``: the image's ENTRYPOINT."""

import sys

from mlstack_task.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
