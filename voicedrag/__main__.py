import sys

from voicedrag.cli import main

sys.exit(main())
