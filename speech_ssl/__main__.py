import sys

from speech_ssl.cli import main

sys.exit(main())
