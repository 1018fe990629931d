import sys

from tsslc.cli import main

sys.exit(main())
