"""``python -m mtlaug_lib.course.book``: the same as ``mtlaug-book``."""

import sys

from .build import main

sys.exit(main())
