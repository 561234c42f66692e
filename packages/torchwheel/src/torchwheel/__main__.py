import sys

from torchwheel.cli import main

sys.exit(main())
